"""`flask radius config --out DIR`: a complete FreeRADIUS 3.2 configuration that reads the
portal's database through rlm_sql, for `freeradius -f -d DIR` to run as it is.

It holds only what the portal needs: the sql module (sqlite or postgresql driver, by the
database URL), pap, one virtual server listening on 127.0.0.1 (auth on `port`, accounting on
`port` + 1), the 127.0.0.1 client with RADIUS_LOCAL_SECRET, and the NAS clients from the
`nas` table (rlm_sql reads them at start-up). The SQL queries are FreeRADIUS's own
queries.conf for the dialect, copied from the installed server (they fit its schema, which
portal.models.radius follows). The dictionary is the system's (dictdir); no user or group is
set, so the server runs as whoever starts it, and every file it writes stays inside DIR."""
from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

DICTIONARY_DIR = "/usr/share/freeradius"
SYSTEM_QUERIES = Path("/etc/freeradius/3.0/mods-config/sql/main")


class ConfigError(ValueError):
    """The database or the machine does not allow a FreeRADIUS configuration."""


def _quote(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sql_connection(database_url: str) -> tuple[str, str]:
    """(dialect, the driver's connection block) for the portal's database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError("FreeRADIUS needs the SQLite database as a file, not in memory")
        path = Path(url.database).resolve()
        return "sqlite", (
            'driver = "rlm_sql_sqlite"\n'
            "\tsqlite {\n"
            f"\t\tfilename = {_quote(path)}\n"
            "\t\tbusy_timeout = 2000\n"
            "\t}\n")
    if url.get_backend_name() == "postgresql":
        return "postgresql", (
            'driver = "rlm_sql_postgresql"\n'
            f"\tserver = {_quote(url.host or 'localhost')}\n"
            f"\tport = {url.port or 5432}\n"
            f"\tlogin = {_quote(url.username or '')}\n"
            f"\tpassword = {_quote(url.password or '')}\n"
            f"\tradius_db = {_quote(url.database or '')}\n")
    raise ConfigError(f"FreeRADIUS cannot read a {url.get_backend_name()} database")


RADIUSD = """\
# Written by `flask radius config`; regenerate instead of editing.
prefix = /usr
exec_prefix = /usr
sysconfdir = {dir}
localstatedir = {dir}/var
sbindir = /usr/sbin
logdir = {dir}/log
raddbdir = {dir}
radacctdir = {dir}/radacct
name = freeradius
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
run_dir = {dir}/run
db_dir = {dir}/var
libdir = /usr/lib/freeradius
dictdir = {dictionary}
pidfile = ${{run_dir}}/radiusd.pid
correct_escapes = true
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no

log {{
\tdestination = files
\tfile = ${{logdir}}/radius.log
\tcolourise = no
\tauth = yes
\tauth_badpass = no
\tauth_goodpass = no
}}

checkconfig {{
\tdestination = files
\tfile = ${{logdir}}/checkconfig.log
}}

security {{
\tallow_core_dumps = no
\tmax_attributes = 200
\treject_delay = 0
\tstatus_server = yes
}}

thread pool {{
\tstart_servers = 2
\tmax_servers = 16
\tmin_spare_servers = 1
\tmax_spare_servers = 4
\tmax_requests_per_server = 0
}}

$INCLUDE clients.conf

modules {{
\t$INCLUDE mods-enabled/
}}

instantiate {{
}}

policy {{
\t# As FreeRADIUS's policy.d/accounting: one id per accounting session, md5 (32 characters).
\tacct_unique {{
\t\tupdate request {{
\t\t\t&Acct-Unique-Session-Id := "%{{md5:%{{User-Name}},%{{Acct-Session-ID}},%{{NAS-IP-Address}},%{{NAS-Identifier}},%{{NAS-Port}}}}"
\t\t}}
\t}}
}}

$INCLUDE sites-enabled/
"""

CLIENTS = """\
# Written by `flask radius config`. The NAS from the portal's `nas` table are read by the sql
# module (read_clients); this is the local one (radclient, the tests, a proxy on the host).
client localhost {{
\tipaddr = 127.0.0.1
\tsecret = {secret}
\tshortname = localhost
\tnas_type = other
\trequire_message_authenticator = no
}}
"""

SQL = """\
sql {{
\tdialect = "{dialect}"
\t{connection}
\tacct_table1 = "radacct"
\tacct_table2 = "radacct"
\tpostauth_table = "radpostauth"
\tauthcheck_table = "radcheck"
\tgroupcheck_table = "radgroupcheck"
\tauthreply_table = "radreply"
\tgroupreply_table = "radgroupreply"
\tusergroup_table = "radusergroup"
\tread_groups = yes
\tread_profiles = no
\tdelete_stale_sessions = yes
\tread_clients = yes
\tclient_table = "nas"
\tgroup_attribute = "SQL-Group"
\tpool {{
\t\tstart = 1
\t\tmin = 1
\t\tmax = 8
\t\tspare = 2
\t\tuses = 0
\t\tretry_delay = 5
\t\tlifetime = 0
\t\tidle_timeout = 60
\t}}
\t$INCLUDE ${{modconfdir}}/sql/main/${{dialect}}/queries.conf
}}
"""

PAP = """\
pap {
\tnormalise = yes
}
"""

SITE = """\
# Written by `flask radius config`: the portal's tables decide (sql), pap checks the password.
server portal {{
\tlisten {{
\t\ttype = auth
\t\tipaddr = {address}
\t\tport = {port}
\t}}
\tlisten {{
\t\ttype = acct
\t\tipaddr = {address}
\t\tport = {acct_port}
\t}}
\tauthorize {{
\t\tsql
\t\tpap
\t}}
\tauthenticate {{
\t\tAuth-Type PAP {{
\t\t\tpap
\t\t}}
\t}}
\tpreacct {{
\t\tacct_unique
\t}}
\taccounting {{
\t\tsql
\t}}
\tpost-auth {{
\t\tPost-Auth-Type REJECT {{
\t\t\tattr_filter.access_reject
\t\t}}
\t}}
}}
"""

ATTR_FILTER = """\
attr_filter attr_filter.access_reject {
\tkey = "%{User-Name}"
\tfilename = ${modconfdir}/attr_filter/access_reject
}
"""

ACCESS_REJECT = """\
DEFAULT
\tReply-Message =* ANY,
\tEAP-Message =* ANY,
\tProxy-State =* ANY,
\tMessage-Authenticator =* ANY
"""


def render_config(out: str | Path, *, database_url: str, port: int = 1812, secret: str = "testing123",  # noqa: S107 — FreeRADIUS's example, loopback only
                  address: str = "127.0.0.1", queries_dir: Path = SYSTEM_QUERIES) -> Path:
    """Write the configuration into `out` (created; files the portal wrote before are
    replaced). Returns the folder."""
    if not 1 <= port <= 65534:
        raise ConfigError("the port must be 1 to 65534 (accounting takes the next one)")
    dialect, connection = _sql_connection(database_url)
    queries = queries_dir / dialect / "queries.conf"
    if not queries.is_file():
        raise ConfigError(f"{queries} is missing: install FreeRADIUS (apt-get install freeradius"
                          f"{' freeradius-postgresql' if dialect == 'postgresql' else ''})")
    root = Path(out).resolve()
    for sub in ("mods-enabled", "sites-enabled", "mods-config/sql/main/" + dialect, "mods-config/attr_filter",
                "log", "run", "var", "radacct"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    files = {
        "radiusd.conf": RADIUSD.format(dir=root, dictionary=DICTIONARY_DIR),
        "clients.conf": CLIENTS.format(secret=_quote(secret)),
        # Local dictionary additions go here; the system's is loaded from dictdir.
        "dictionary": "# Local attributes (the system dictionary is loaded from dictdir).\n",
        "mods-enabled/sql": SQL.format(dialect=dialect, connection=connection),
        "mods-enabled/pap": PAP,
        # rlm_expr registers the %{tolower:} and %{md5:} expansions the queries and acct_unique use.
        "mods-enabled/expr": "expr {\n}\n",
        "mods-enabled/attr_filter": ATTR_FILTER,
        "mods-config/attr_filter/access_reject": ACCESS_REJECT,
        "sites-enabled/portal": SITE.format(address=address, port=port, acct_port=port + 1),
    }
    for name, text in files.items():
        (root / name).write_text(text)
    shutil.copyfile(queries, root / "mods-config/sql/main" / dialect / "queries.conf")
    return root
