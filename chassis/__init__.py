"""The microservice chassis: what every service needs and nothing domain-specific.

Settings, the gRPC server factory, error mapping, the database, idempotency, pagination, telemetry
and logging live here once, so that a service holds only its own contract, rules and tables.
"""
