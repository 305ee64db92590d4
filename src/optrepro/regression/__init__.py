"""Regression of paper claims: re-run claims at the current code (`claims regress`) and compare short committed
runs digit for digit (`drift check`)."""
