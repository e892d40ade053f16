"""FreeRADIUS's standard rlm_sql tables, in the shape of its own schema.sql (v3.2.x,
raddb/mods-config/sql/main/{postgresql,sqlite}/schema.sql), so FreeRADIUS's stock queries
read them. They live in the portal's database; only portal.integrations.radius writes them
(radacct is FreeRADIUS's to write). Plain tables, not mapped classes: the column names are
FreeRADIUS's, lower case as both schemas store them."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table

from .base import Base

_M = Base.metadata


def _attribute_table(name: str, key: str, op_default: str) -> Table:
    return Table(
        name, _M,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column(key, String(64), nullable=False, server_default=""),
        Column("attribute", String(64), nullable=False, server_default=""),
        Column("op", String(2), nullable=False, server_default=op_default),
        Column("value", String(253), nullable=False, server_default=""),
        Index(f"ix_{name}_{key}", key, "attribute"),
    )


radcheck = _attribute_table("radcheck", "username", "==")
radreply = _attribute_table("radreply", "username", "=")
radgroupcheck = _attribute_table("radgroupcheck", "groupname", "==")
radgroupreply = _attribute_table("radgroupreply", "groupname", "=")

radusergroup = Table(
    "radusergroup", _M,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, server_default=""),
    Column("groupname", String(64), nullable=False, server_default=""),
    Column("priority", Integer, nullable=False, server_default="1"),
    Index("ix_radusergroup_username", "username"),
)

nas = Table(
    "nas", _M,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("nasname", String(128), nullable=False),
    Column("shortname", String(32), nullable=False, server_default=""),
    Column("type", String(30), nullable=False, server_default="other"),
    Column("ports", Integer),
    Column("secret", String(60), nullable=False, server_default="secret"),
    Column("server", String(64)),
    Column("community", String(50)),
    Column("description", String(200), server_default="RADIUS Client"),
    Index("ix_nas_nasname", "nasname"),
)

# FreeRADIUS writes accounting here (its stock queries); the portal reads it. Times are the
# server's local timestamps as its queries store them (naive), hence plain DateTime.
radacct = Table(
    "radacct", _M,
    Column("radacctid", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("acctsessionid", String(64), nullable=False, server_default=""),
    Column("acctuniqueid", String(32), nullable=False, server_default="", unique=True),
    Column("username", String(64), nullable=False, server_default=""),
    Column("realm", String(64), server_default=""),
    Column("nasipaddress", String(15), nullable=False, server_default=""),
    Column("nasportid", String(32)),
    Column("nasporttype", String(32)),
    Column("acctstarttime", DateTime),
    Column("acctupdatetime", DateTime),
    Column("acctstoptime", DateTime),
    Column("acctinterval", Integer),
    Column("acctsessiontime", Integer),
    Column("acctauthentic", String(32)),
    Column("connectinfo_start", String(128)),
    Column("connectinfo_stop", String(128)),
    Column("acctinputoctets", BigInteger),
    Column("acctoutputoctets", BigInteger),
    Column("calledstationid", String(50), nullable=False, server_default=""),
    Column("callingstationid", String(50), nullable=False, server_default=""),
    Column("acctterminatecause", String(32), nullable=False, server_default=""),
    Column("servicetype", String(32)),
    Column("framedprotocol", String(32)),
    Column("framedipaddress", String(15), nullable=False, server_default=""),
    Column("framedipv6address", String(45), nullable=False, server_default=""),
    Column("framedipv6prefix", String(45), nullable=False, server_default=""),
    Column("framedinterfaceid", String(44), nullable=False, server_default=""),
    Column("delegatedipv6prefix", String(45), nullable=False, server_default=""),
    Column("class", String(64)),
    Index("ix_radacct_username", "username"),
    Index("ix_radacct_acctsessionid", "acctsessionid"),
    Index("ix_radacct_acctstarttime", "acctstarttime"),
    Index("ix_radacct_acctstoptime", "acctstoptime"),
    Index("ix_radacct_nasipaddress", "nasipaddress"),
)

# FreeRADIUS's stock post-auth query writes here (the default site logs every answer).
radpostauth = Table(
    "radpostauth", _M,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, server_default=""),
    Column("pass", String(64), nullable=False, server_default=""),
    Column("reply", String(32), nullable=False, server_default=""),
    Column("authdate", DateTime, nullable=False),
    Column("class", String(64)),
)

