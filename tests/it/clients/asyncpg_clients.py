"""asyncpg through pgmux in transaction mode, default statement cache.

asyncpg prepares every query as a named statement (`__asyncpg_stmt_N__`) once per
connection and from then on only Binds it: the classic driver that breaks behind a
transaction pooler, because the next transaction lands on a server that never saw the
Parse. Every result is checked here; the script exits non-zero on the first mismatch and
finally prints one `ok key=value ...` line for the Rust test to check.

Environment: PGMUX_URL, CONNECTIONS, ITERATIONS, TABLE (a unique table name).
"""

import asyncio
import os

import asyncpg

URL = os.environ["PGMUX_URL"]
CONNECTIONS = int(os.environ["CONNECTIONS"])
ITERATIONS = int(os.environ["ITERATIONS"])
TABLE = os.environ["TABLE"]


def check(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


async def one_connection(i, conn, counts):
    """Cached statements, an explicit prepare(), a transaction and executemany."""
    backends = set()
    for n in range(ITERATIONS):
        check(await conn.fetchval("select $1::int * 2", n), n * 2, "fetchval *2")
        check(await conn.fetchval("select $1::int + $2::int", n, i), n + i, "fetchval +")
        row = await conn.fetchrow(
            "select $1::text || '-' || $2::text as s, pg_backend_pid() as pid", f"c{i}", str(n)
        )
        check(row["s"], f"c{i}-{n}", "fetchrow text")
        backends.add(row["pid"])
        counts["queries"] += 3

    # An explicitly prepared statement, executed in later transactions.
    minus = await conn.prepare("select $1::int - $2::int as d, $3::text as tag")
    check([a.name for a in minus.get_attributes()], ["d", "tag"], "prepared attributes")
    for n in range(ITERATIONS):
        rows = await minus.fetch(n, i, f"t{n}")
        check([tuple(r) for r in rows], [(n - i, f"t{n}")], "prepared fetch")
        counts["queries"] += 1

    # Statements inside a transaction block, which pins one server until COMMIT.
    async with conn.transaction():
        pid = await conn.fetchval("select pg_backend_pid()")
        for n in range(5):
            check(await minus.fetchval(n, 1, "x"), n - 1, "prepared in transaction")
            check(await conn.fetchval("select pg_backend_pid()"), pid, "same server in txn")
            counts["queries"] += 2

    # executemany: one prepared insert bound once per row.
    await conn.executemany(
        f"insert into {TABLE} (conn, n) values ($1, $2)", [(i, n) for n in range(ITERATIONS)]
    )
    row = await conn.fetchrow(f"select count(*) as c, sum(n) as s from {TABLE} where conn = $1", i)
    check((row["c"], row["s"]), (ITERATIONS, sum(range(ITERATIONS))), "executemany rows")
    counts["queries"] += 1

    # A statement error inside an otherwise fine statement, then the connection goes on.
    try:
        await conn.fetchval("select 1 / $1::int", 0)
        raise AssertionError("division by zero succeeded")
    except asyncpg.exceptions.DivisionByZeroError:
        pass
    check(await conn.fetchval("select 1 / $1::int", 1), 1, "after an error")
    counts["queries"] += 2
    return backends


async def forced_moves(conn, blocker1, blocker2, counts):
    """Deterministic moves on the two servers: while blocker 1 holds one server in an
    open transaction, conn's statement can only run on the other; blocker 2 then takes
    that one (waiting for it if need be) and blocker 1 lets go, so conn's next execution,
    only a Bind, must run on the server it did not use just before."""
    query = "select $1::text || '-' || $2::text as s, pg_backend_pid() as pid"

    async def hold(blocker):
        await blocker.execute("begin")
        return await blocker.fetchval("select pg_backend_pid()")

    async def run(tag, n, held):
        row = await conn.fetchrow(query, tag, str(n))
        check(row["s"], f"{tag}-{n}", "moved statement")
        if row["pid"] == held:
            raise AssertionError("ran on the server held by another client's transaction")
        counts["queries"] += 1
        return row["pid"]

    backends = set()
    for n in range(2):
        held = await hold(blocker1)
        backends.add(await run("m", n, held))
        held = await hold(blocker2)
        await blocker1.execute("commit")
        backends.add(await run("n", n, held))
        await blocker2.execute("commit")
    return len(backends)


async def pool_phase(counts):
    """asyncpg's own pool: every acquire/release cycle resets the connection."""
    pool = await asyncpg.create_pool(URL, min_size=CONNECTIONS, max_size=CONNECTIONS)
    try:
        async def task(k):
            check(await pool.fetchval("select $1::int * 3", k), k * 3, "pool fetchval")
            async with pool.acquire() as conn:
                check(await conn.fetchval("select $1::bigint + 1", k), k + 1, "pool acquire")
            counts["queries"] += 2

        await asyncio.gather(*(task(k) for k in range(CONNECTIONS * 4)))
    finally:
        await pool.close()


async def main():
    counts = {"queries": 0}
    conns = await asyncio.gather(*(asyncpg.connect(URL) for _ in range(CONNECTIONS)))
    await conns[0].execute(f"create table {TABLE} (conn int, n int)")
    try:
        seen = await asyncio.gather(*(one_connection(i, c, counts) for i, c in enumerate(conns)))
        forced = await forced_moves(conns[0], conns[1], conns[2], counts)
        # Which names the last server holds: pgmux's own, never the driver's.
        names = await conns[0].fetchval(
            "select string_agg(name, ',' order by name) from pg_prepared_statements"
        )
        await pool_phase(counts)
    finally:
        await conns[0].execute(f"drop table if exists {TABLE}")
        await asyncio.gather(*(c.close() for c in conns))
    backends = set().union(*seen)
    moved = sum(1 for s in seen if len(s) > 1)
    print(
        f"ok queries={counts['queries']} connections={len(conns)} backends={len(backends)} "
        f"moved={moved} forced_move_backends={forced} server_statements={names or ''}"
    )


asyncio.run(main())
