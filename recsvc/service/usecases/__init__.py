"""What the endpoints do, as plain functions of the service state: callable without
HTTP, and the same for the routes and the fast path."""
