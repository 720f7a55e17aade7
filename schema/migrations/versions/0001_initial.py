"""Initial schema: tenants, routes, flows + immutable versions, provider configs, documents + chunks,
call records.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Written by hand from autogenerate's output: the flows <-> flow_versions cycle is closed with a
foreign key added after both tables exist, and a trigger makes flow versions immutable in SQL.
Every table is AUTOINCREMENT on SQLite: ids are never reused (chunk ids live in vector indexes).
This file is frozen: it uses plain SQLAlchemy types, never `schema.models`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_uuid", sa.String(length=36), nullable=False),
        sa.Column("domain_name", sa.String(length=253), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("max_concurrent_calls", sa.Integer(), nullable=True),
        sa.Column("over_limit_action", sa.String(length=32), nullable=False),
        ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("domain_name", name=op.f("uq_tenants_domain_name")),
        sa.UniqueConstraint("domain_uuid", name=op.f("uq_tenants_domain_uuid")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("flow_name", sa.String(length=128), nullable=False),
        ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_routes_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint("tenant_id", "number", name=op.f("uq_routes_tenant_id_number")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_routes_tenant_id"), "routes", ["tenant_id"])

    op.create_table(
        "flows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("published_version_id", sa.Integer(), nullable=True),
        ts("created_at"),
        ts("updated_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_flows_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
        sa.UniqueConstraint("id", "tenant_id", name=op.f("uq_flows_id_tenant_id")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_flows_tenant_id_name")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_flows_tenant_id"), "flows", ["tenant_id"])

    op.create_table(
        "flow_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        ts("created_at"),
        sa.ForeignKeyConstraint(["flow_id", "tenant_id"], ["flows.id", "flows.tenant_id"],
                                name=op.f("fk_flow_versions_flow_id_tenant_id_flows"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_versions")),
        sa.UniqueConstraint("flow_id", "checksum", name=op.f("uq_flow_versions_flow_id_checksum")),
        sa.UniqueConstraint("flow_id", "version", name=op.f("uq_flow_versions_flow_id_version")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_flow_versions_flow_id"), "flow_versions", ["flow_id"])
    op.create_index(op.f("ix_flow_versions_tenant_id"), "flow_versions", ["tenant_id"])
    with op.batch_alter_table("flows", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_flows_published_version_id_flow_versions"), "flow_versions",
            ["published_version_id"], ["id"], ondelete="SET NULL")

    op.create_table(
        "provider_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("secrets_encrypted", sa.Text(), nullable=True),
        ts("created_at"),
        ts("updated_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_provider_configs_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_configs")),
        sa.UniqueConstraint("tenant_id", "kind", "position",
                            name=op.f("uq_provider_configs_tenant_id_kind_position")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_provider_configs_tenant_id"), "provider_configs", ["tenant_id"])

    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("source_path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=512), nullable=False),
        sa.Column("embedding_model", sa.String(length=256), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_documents_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("id", "tenant_id", name=op.f("uq_documents_id_tenant_id")),
        sa.UniqueConstraint("tenant_id", "source_path", name=op.f("uq_documents_tenant_id_source_path")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_documents_tenant_id"), "documents", ["tenant_id"])

    op.create_table(
        "chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding_model", sa.String(length=256), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.ForeignKeyConstraint(["document_id", "tenant_id"], ["documents.id", "documents.tenant_id"],
                                name=op.f("fk_chunks_document_id_tenant_id_documents"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chunks")),
        sa.UniqueConstraint("document_id", "ordinal", name=op.f("uq_chunks_document_id_ordinal")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_chunks_document_id"), "chunks", ["document_id"])
    op.create_index(op.f("ix_chunks_tenant_id"), "chunks", ["tenant_id"])

    op.create_table(
        "call_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_uuid", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(length=128), nullable=False),
        sa.Column("destination", sa.String(length=128), nullable=False),
        ts("started_at", nullable=True),
        ts("answered_at", nullable=True),
        ts("ended_at", nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("hangup_cause", sa.String(length=64), nullable=False),
        sa.Column("flow_name", sa.String(length=128), nullable=False),
        sa.Column("flow_version_id", sa.Integer(), nullable=True),
        sa.Column("path", JSON, nullable=False),
        sa.Column("recordings", JSON, nullable=False),
        sa.Column("turns", JSON, nullable=False),
        sa.Column("latencies", JSON, nullable=False),
        ts("updated_at"),
        sa.ForeignKeyConstraint(["flow_version_id"], ["flow_versions.id"],
                                name=op.f("fk_call_records_flow_version_id_flow_versions"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_call_records_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_records")),
        sa.UniqueConstraint("call_uuid", name=op.f("uq_call_records_call_uuid")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_call_records_tenant_started", "call_records", ["tenant_id", "started_at"])

    _create_immutability_trigger()


def _create_immutability_trigger() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ivr_flow_versions_immutable() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'flow versions are immutable'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER flow_versions_immutable BEFORE UPDATE ON flow_versions "
            "FOR EACH ROW EXECUTE FUNCTION ivr_flow_versions_immutable()"
        )
    else:
        op.execute(
            "CREATE TRIGGER flow_versions_immutable BEFORE UPDATE ON flow_versions "
            "BEGIN SELECT RAISE(ABORT, 'flow versions are immutable'); END"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS flow_versions_immutable"
               + (" ON flow_versions" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ivr_flow_versions_immutable()")
    op.drop_table("call_records")
    op.drop_table("chunks")
    op.drop_table("documents")
    op.drop_table("provider_configs")
    with op.batch_alter_table("flows") as batch_op:
        batch_op.drop_constraint(op.f("fk_flows_published_version_id_flow_versions"), type_="foreignkey")
    op.drop_table("flow_versions")
    op.drop_table("flows")
    op.drop_table("routes")
    op.drop_table("tenants")
