"""Regression of paper claims: re-run claims at the current code (`regression claims`) and compare short committed
runs digit for digit (`regression drift`)."""
