"""Storage of the IVR controller: tenants, routes, versioned flows, provider configs with encrypted
secrets, RAG documents/chunks and call records (SQLAlchemy 2 + Alembic; SQLite or PostgreSQL).

Modules: `database` (URLs, engines), `models`, `migrate` (Alembic, programmatic), `tenants`
(tenant rows), `store` (`TenantStore`: every tenant-owned read/write), `flow_versions`
(publish/history/rollback/export), `secrets` (MultiFernet), `snapshot` (in-memory per-tenant
config), `resolve` (call → tenant → flow without a query), `limits` (concurrent calls),
`call_records` (writer with disk spool), `reload_bus` (NOTIFY or control socket), `demo`,
`errors` (the exception family).  `schema` imports nothing else of ours (only `ivr_flows`,
lazily, to validate a flow before publishing it).
"""
