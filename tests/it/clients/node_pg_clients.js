// node-postgres (`pg`) named queries through pgmux in transaction mode.
//
// A query config with a `name` makes pg send Parse with that name once per connection
// and afterwards only Bind it, so the statement must follow the connection to whichever
// server runs its next transaction. Several pg.Clients run concurrently; every result is
// checked, the script exits non-zero on the first mismatch and finally prints one
// `ok key=value ...` line for the Rust test to check.
//
// Environment: PGMUX_URL, CONNECTIONS, ITERATIONS.
'use strict';
const assert = require('assert');
const { Client } = require('pg');

const URL = process.env.PGMUX_URL;
const CONNECTIONS = Number(process.env.CONNECTIONS);
const ITERATIONS = Number(process.env.ITERATIONS);

const add = (a, b) => ({
  name: 'add',
  text: 'select $1::int + $2::int as s, pg_backend_pid() as pid',
  values: [a, b],
});
const concat = (a, b) => ({
  name: 'concat',
  text: "select $1::text || '-' || $2::text as s",
  values: [a, b],
});
const divide = (d) => ({ name: 'divide', text: 'select 10 / $1::int as q', values: [d] });

async function worker(i) {
  const client = new Client({ connectionString: URL });
  await client.connect();
  let queries = 0;
  const backends = new Set();
  try {
    for (let n = 0; n < ITERATIONS; n++) {
      const r = await client.query(add(n, i));
      assert.strictEqual(r.rows[0].s, n + i, 'add');
      backends.add(r.rows[0].pid);
      const c = await client.query(concat(`c${i}`, String(n)));
      assert.strictEqual(c.rows[0].s, `c${i}-${n}`, 'concat');
      queries += 2;
    }

    // Several named queries queued at once on one client (pg pipelines them in order).
    const batch = await Promise.all([0, 1, 2, 3, 4].map((n) => client.query(add(n, 100))));
    assert.deepStrictEqual(batch.map((r) => r.rows[0].s), [100, 101, 102, 103, 104], 'queued');
    queries += 5;

    // Named queries inside a transaction block: one server until COMMIT.
    await client.query('begin');
    const pids = new Set();
    for (let n = 0; n < 5; n++) {
      const r = await client.query(add(n, -n));
      assert.strictEqual(r.rows[0].s, 0, 'add in transaction');
      pids.add(r.rows[0].pid);
    }
    await client.query('commit');
    assert.strictEqual(pids.size, 1, 'a transaction stays on one server');
    queries += 7;

    // An execution error of a named statement surfaces, and the name keeps working.
    await assert.rejects(client.query(divide(0)), (e) => e.code === '22012');
    assert.strictEqual((await client.query(divide(5))).rows[0].q, 2, 'after an error');
    queries += 2;

    // A name reused with new text is pg's own error, before anything is sent.
    await assert.rejects(
      client.query({ name: 'add', text: 'select 1', values: [] }),
      /Prepared statements must be unique/,
    );

    let names = null;
    if (i === 0) {
      const r = await client.query({
        name: 'names',
        text: "select coalesce(string_agg(name, ',' order by name), '') as n from pg_prepared_statements",
      });
      names = r.rows[0].n;
    }
    return { queries, backends, names };
  } finally {
    await client.end();
  }
}

// Deterministic moves: after the client's named statement ran, the blocker opens a
// transaction and so takes the server the client just released (pgmux hands out the most
// recently used idle server); the client's next execution, only a Bind for pg, must then
// run on the other server.
async function forcedMoves() {
  const client = new Client({ connectionString: URL });
  const blocker = new Client({ connectionString: URL });
  await client.connect();
  await blocker.connect();
  try {
    const backends = new Set();
    for (let n = 0; n < 3; n++) {
      const before = await client.query(add(n, 1000));
      assert.strictEqual(before.rows[0].s, n + 1000, 'statement before the move');
      backends.add(before.rows[0].pid);
      await blocker.query('begin');
      const held = (await blocker.query('select pg_backend_pid() as pid')).rows[0].pid;
      const moved = await client.query(add(n, 2000));
      assert.strictEqual(moved.rows[0].s, n + 2000, 'moved statement');
      assert.notStrictEqual(moved.rows[0].pid, held, 'ran on the server held by the blocker');
      backends.add(moved.rows[0].pid);
      await blocker.query('commit');
    }
    return backends.size;
  } finally {
    await client.end();
    await blocker.end();
  }
}

async function main() {
  const results = await Promise.all([...Array(CONNECTIONS).keys()].map(worker));
  const forced = await forcedMoves();
  const backends = new Set();
  for (const r of results) r.backends.forEach((b) => backends.add(b));
  const moved = results.filter((r) => r.backends.size > 1).length;
  const queries = results.reduce((sum, r) => sum + r.queries, 0);
  console.log(
    `ok queries=${queries} connections=${results.length} backends=${backends.size} ` +
      `moved=${moved} forced_move_backends=${forced} server_statements=${results[0].names}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
