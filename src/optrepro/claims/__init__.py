"""Paper claims as data (`reproductions/<paper>/claims.yaml`), checked against our run records."""
