// node-postgres through tether in transaction mode: named queries (prepared once per client
// connection, then Bind/Execute only) from many clients over a small pool, inside and outside
// transactions, with an error in between. Prints a JSON summary; exits 1 on a failure.
'use strict';
const { Pool } = require('pg');

async function main() {
  const [host, port] = [process.argv[2], Number(process.argv[3] || 5432)];
  const pool = new Pool({ host, port, user: 'app', database: 'appdb', max: 20 });
  let runs = 0;
  const work = async (i) => {
    const c = await pool.connect();
    try {
      for (let j = 0; j < 10; j++) {
        const r = await c.query({ name: 'mul', text: 'select $1::int * $2::int as v', values: [i, j] });
        if (r.rows[0].v !== i * j) throw new Error(`mul ${i}*${j} = ${r.rows[0].v}`);
        const s = await c.query({ name: 'txt', text: 'select $1::text || $2::text as v', values: ['n', String(i)] });
        if (s.rows[0].v !== `n${i}`) throw new Error(`txt ${s.rows[0].v}`);
        runs += 2;
      }
      await c.query('begin');
      await c.query({ name: 'mul', text: 'select $1::int * $2::int as v', values: [i, 3] });
      try {
        await c.query({ name: 'bad', text: 'select 1 / $1::int as v', values: [0] });
        throw new Error('division by zero did not fail');
      } catch (e) {
        if (!/division by zero/.test(e.message)) throw e;
      }
      await c.query('rollback');
      const r = await c.query({ name: 'bad', text: 'select 1 / $1::int as v', values: [1] });
      if (r.rows[0].v !== 1) throw new Error('bad after rollback');
    } finally {
      c.release();
    }
  };
  await Promise.all(Array.from({ length: 50 }, (_, i) => work(i)));
  await pool.end();
  console.log(JSON.stringify({ ok: true, queries: runs }));
}

const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 60000);
main().then(() => clearTimeout(timer)).catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
