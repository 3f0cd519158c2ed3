"""psycopg 3 through pgmux in transaction mode with prepare_threshold=0.

With prepare_threshold=0 psycopg prepares every query as a named statement (`_pg3_N`)
on first use and afterwards only Binds it. One thread per connection, half of them in
autocommit mode and half in psycopg's default transactional mode; a few with a tiny
prepared_max so psycopg itself deallocates and re-prepares statements. Every result is
checked; the script exits non-zero on the first mismatch and finally prints one
`ok key=value ...` line for the Rust test to check.

Environment: PGMUX_URL, CONNECTIONS, ITERATIONS, TABLE (a unique table name).
"""

import os
import threading

import psycopg

URL = os.environ["PGMUX_URL"]
CONNECTIONS = int(os.environ["CONNECTIONS"])
ITERATIONS = int(os.environ["ITERATIONS"])
TABLE = os.environ["TABLE"]

lock = threading.Lock()
results = {}
errors = []


def check(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def end_txn(conn):
    if not conn.autocommit:
        conn.commit()


def worker(i):
    queries = 0
    backends = set()
    with psycopg.connect(URL, prepare_threshold=0, autocommit=(i % 2 == 0)) as conn:
        if i % 4 == 1:
            # More distinct statements than psycopg keeps: it deallocates the oldest
            # and prepares it again next time.
            conn.prepared_max = 2
        for n in range(ITERATIONS):
            row = conn.execute("select %s::int + %s::int, pg_backend_pid()", (n, i)).fetchone()
            check(row[0], n + i, "sum")
            backends.add(row[1])
            check(conn.execute("select %s::text || '-' || %s::text", (f"c{i}", str(n))).fetchone(),
                  (f"c{i}-{n}",), "text")
            check(conn.execute("select %s::int * %s::int", (n, 3)).fetchone(), (n * 3,), "product")
            check(conn.execute("select %s::bigint - 1", (n,)).fetchone(), (n - 1,), "minus")
            end_txn(conn)
            queries += 4

        # executemany (pipelined Binds of one prepared insert), then read back.
        with conn.cursor() as cur:
            cur.executemany(
                f"insert into {TABLE} (conn, n) values (%s, %s)",
                [(i, n) for n in range(ITERATIONS)],
            )
        end_txn(conn)
        row = conn.execute(f"select count(*), sum(n) from {TABLE} where conn = %s", (i,)).fetchone()
        check(row, (ITERATIONS, sum(range(ITERATIONS))), "executemany rows")
        end_txn(conn)
        queries += 1

        # A server-side (named) cursor, fetched in batches inside one transaction.
        with conn.transaction():
            with conn.cursor(name=f"cur_{i}") as cur:
                cur.execute("select g from generate_series(1, %s) g", (100,))
                total = 0
                while rows := cur.fetchmany(7):
                    total += sum(r[0] for r in rows)
        check(total, 5050, "server-side cursor")
        end_txn(conn)
        queries += 1

        # A failing execution of a prepared statement, then the connection goes on.
        try:
            conn.execute("select 1 / %s::int", (0,))
            raise AssertionError("division by zero succeeded")
        except psycopg.errors.DivisionByZero:
            conn.rollback()
        check(conn.execute("select 1 / %s::int", (1,)).fetchone(), (1,), "after an error")
        end_txn(conn)
        queries += 2

        names = None
        if i == 0:
            names = conn.execute(
                "select string_agg(name, ',' order by name) from pg_prepared_statements"
            ).fetchone()[0]
    with lock:
        results[i] = (queries, backends, names)


def forced_moves():
    """Deterministic moves on the two servers: while blocker 1 holds one server in an
    open transaction, conn's statement can only run on the other; blocker 2 then takes
    that one (waiting for it if need be) and blocker 1 lets go, so conn's next execution,
    only a Bind, must run on the server it did not use just before."""
    query = "select %s::int + %s::int, pg_backend_pid()"
    backends = set()
    with psycopg.connect(URL, prepare_threshold=0, autocommit=True) as conn, \
            psycopg.connect(URL, autocommit=True) as blocker1, \
            psycopg.connect(URL, autocommit=True) as blocker2:

        def hold(blocker):
            blocker.execute("begin")
            return blocker.execute("select pg_backend_pid()").fetchone()[0]

        def run(n, held):
            row = conn.execute(query, (n, 1000)).fetchone()
            check(row[0], n + 1000, "moved statement")
            if row[1] == held:
                raise AssertionError("ran on the server held by another transaction")
            backends.add(row[1])

        for n in range(2):
            run(n, hold(blocker1))
            held = hold(blocker2)
            blocker1.execute("commit")
            run(n + 10, held)
            blocker2.execute("commit")
    return len(backends)


def run(i):
    try:
        worker(i)
    except BaseException as e:  # reported by the main thread
        with lock:
            errors.append(f"connection {i}: {type(e).__name__}: {e}")


with psycopg.connect(URL, autocommit=True) as setup:
    setup.execute(f"create table {TABLE} (conn int, n int)")
try:
    threads = [threading.Thread(target=run, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    forced = forced_moves()
finally:
    with psycopg.connect(URL, autocommit=True) as setup:
        setup.execute(f"drop table if exists {TABLE}")

if errors:
    raise SystemExit("failures:\n" + "\n".join(errors))
backends = set().union(*(r[1] for r in results.values()))
moved = sum(1 for r in results.values() if len(r[1]) > 1)
print(
    f"ok queries={sum(r[0] for r in results.values())} connections={len(results)} "
    f"backends={len(backends)} moved={moved} forced_move_backends={forced} "
    f"server_statements={results[0][2] or ''}"
)
