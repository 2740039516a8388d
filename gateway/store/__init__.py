"""SQLModel tables and the queries the services need."""
