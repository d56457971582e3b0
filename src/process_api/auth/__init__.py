"""Who sends a request: bearer tokens of an OpenID Connect provider (Keycloak or any other)
and API keys, turned into a User. What a user may do with jobs and processes is decided in
auth/rules.py; where each route stands (public or protected) in api/auth.py."""
