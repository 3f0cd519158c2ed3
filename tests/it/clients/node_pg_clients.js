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

// Deterministic moves on the two servers: while blocker 1 holds one server in an open
// transaction, the client's named statement can only run on the other; blocker 2 then
// takes that one (waiting for it if need be) and blocker 1 lets go, so the client's next
// execution, only a Bind, must run on the server it did not use just before.
async function forcedMoves() {
  const [client, blocker1, blocker2] = [0, 1, 2].map(() => new Client({ connectionString: URL }));
  for (const c of [client, blocker1, blocker2]) await c.connect();
  const hold = async (blocker) => {
    await blocker.query('begin');
    return (await blocker.query('select pg_backend_pid() as pid')).rows[0].pid;
  };
  const backends = new Set();
  const run = async (n, held) => {
    const r = await client.query(add(n, 1000));
    assert.strictEqual(r.rows[0].s, n + 1000, 'moved statement');
    assert.notStrictEqual(r.rows[0].pid, held, 'ran on the server held by a blocker');
    backends.add(r.rows[0].pid);
  };
  try {
    for (let n = 0; n < 2; n++) {
      await run(n, await hold(blocker1));
      const held = await hold(blocker2);
      await blocker1.query('commit');
      await run(n + 10, held);
      await blocker2.query('commit');
    }
    return backends.size;
  } finally {
    for (const c of [client, blocker1, blocker2]) await c.end();
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
