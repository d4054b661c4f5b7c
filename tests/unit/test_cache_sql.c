/* Unit tests for the read cache's SQL analysis: normalization, fingerprints, hints, cacheable
 * reads and the tables they name, write targets, DDL and "invalidate everything". */
#include <stdlib.h>
#include <string.h>

#include "../../plugins/cache/cache_sql.h"
#include "tap.h"

static struct cache_sql_info info;

/* The statement on one line, for test names. */
static const char *show(const char *sql)
{
	static char buf[4][512];
	static int k;
	char *o = buf[k++ % 4];
	size_t i = 0;
	for (; sql[i] && i < 511; i++)
		o[i] = sql[i] == '\n' || sql[i] == '\t' ? ' ' : sql[i];
	o[i] = '\0';
	return o;
}

static void analyze(const char *sql)
{
	cache_sql_info_deinit(&info);
	if (cache_sql_analyze(sql, strlen(sql), NULL, &info) != 0) {
		printf("# analyze failed\n");
		abort();
	}
}

static const char *names(const struct cache_sql_names *l)
{
	static char buf[1024];
	buf[0] = '\0';
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			strcat(buf, ",");
		strcat(buf, l->v[i]);
	}
	return buf;
}

static void norm(const char *sql, const char *want)
{
	analyze(sql);
	is_str(info.normalized, want, "normalize: %s", show(sql));
}

static void fp(const char *sql, const char *want)
{
	analyze(sql);
	is_str(info.fingerprint, want, "fingerprint: %s", show(sql));
}

/* A cacheable read naming `reads`. */
static void rd(const char *sql, const char *reads)
{
	analyze(sql);
	ok(info.cacheable, "cacheable: %s", show(sql));
	if (!info.cacheable)
		printf("#   why not: %s\n", info.why_not);
	ok(!info.invalidate_all && info.writes.n == 0, "read invalidates nothing: %s", show(sql));
	is_str(names(&info.reads), reads, "reads of: %s", show(sql));
}

/* Not cacheable; invalidates `writes` (NULL: everything; "": nothing). */
static void wr(const char *sql, const char *writes)
{
	analyze(sql);
	ok(!info.cacheable, "not cacheable: %s", show(sql));
	if (!writes) {
		ok(info.invalidate_all, "invalidates everything: %s", show(sql));
	} else {
		ok(!info.invalidate_all, "invalidates only tables: %s%s%s", show(sql), info.why_all ? " -- " : "",
		   info.why_all ? info.why_all : "");
		is_str(names(&info.writes), writes, "write targets of: %s", show(sql));
	}
}

static void normalization(void)
{
	norm("SELECT  *\n\tFROM   Products WHERE Id = 1;", "select * from products where id = 1");
	norm("  select 1 ;; ", "select 1");
	norm("select 'It''s  A'  ,\"Mixed  Case\"", "select 'It''s  A' ,\"Mixed  Case\"");
	norm("SELECT E'a\\'  B' FROM t", "select E'a\\'  B' from t");
	norm("select $fn$ Body  $$ x $fn$, $$A  b$$", "select $fn$ Body  $$ x $fn$, $$A  b$$");
	norm("select 1 -- trailing comment\n, 2", "select 1 , 2");
	norm("select /* a /* nested */ comment */ 1", "select 1");
	norm("select a/**/b", "select a b");
	norm("SELECT x::NUMERIC(10,2), U&'\\0041  b', B'1010', X'FF'", "select x::numeric(10,2), U&'\\0041  b', B'1010', X'FF'");
	norm("select 'a'\n   'b'", "select 'a'\n'b'");
	norm("select 'a'   'b'", "select 'a' 'b'");
	norm("select 1.5e10, .5, 0x1F, 1_000", "select 1.5e10, .5, 0x1F, 1_000");
	norm("select a-->b\n", "select a");
	norm("SELECT Ünïcode FROM Tbl", "select Ünïcode from tbl");
	norm("select $1, $2::int", "select $1, $2::int");

	/* standard_conforming_strings off: backslash escapes in plain strings */
	cache_sql_info_deinit(&info);
	struct cache_sql_opts o = { .backslash_strings = true };
	const char *s = "select 'it\\'s  x' from t";
	ok(cache_sql_analyze(s, strlen(s), &o, &info) == 0, "analyze with backslash strings");
	is_str(info.normalized, "select 'it\\'s  x' from t", "backslash quote inside a string");
	ok(info.cacheable, "and it is a read");

	analyze("select 'unterminated");
	ok(!info.cacheable && info.invalidate_all, "unterminated string: not cacheable, invalidate all");
	analyze("select 1 /* open comment");
	ok(!info.cacheable && info.invalidate_all, "unterminated comment");
	analyze("select \"open ident");
	ok(!info.cacheable && info.invalidate_all, "unterminated quoted identifier");
	analyze("select $q$ open");
	ok(!info.cacheable && info.invalidate_all, "unterminated dollar quote");
}

static void fingerprints(void)
{
	fp("SELECT * FROM t WHERE a = 1 AND b = 'x' AND c = $1", "select * from t where a = ? and b = ? and c = $1");
	fp("select E'\\n', $$x$$, 1.5, -3, date '2024-01-01'", "select ?, ?, ?, -?, date ?");
	fp("select * from t where id in (1, 2, 3)", "select * from t where id in (?, ?, ?)");
	fp("select \"Col\" from \"T\" where x = 'a''b'", "select \"Col\" from \"T\" where x = ?");
	analyze("select 1 where x = 2");
	analyze("SELECT   1   WHERE x=2");
	is_str(info.fingerprint, "select ? where x=?", "spacing kept where the user had none");
}

static void hints(void)
{
	analyze("/* tether:cache ttl=30s */ select 1");
	ok(info.hint && !info.hint_nocache, "hint found");
	is_int(info.hint_ttl_ms, 30000, "hint ttl");
	is_str(info.normalized, "select 1", "hint comment removed from the text");
	analyze("select 1 /* tether:cache */");
	ok(info.hint && info.hint_ttl_ms == 0, "hint without ttl");
	analyze("select 1 /*   TETHER:CACHE   ttl=2m  */");
	is_int(info.hint_ttl_ms, 120000, "hint case and spacing");
	analyze("select 1 /* tether:nocache */");
	ok(!info.hint && info.hint_nocache, "nocache hint");
	analyze("select 1 /* tether:cache off */");
	ok(!info.hint && info.hint_nocache, "cache off hint");
	analyze("select 1 -- tether:cache ttl=5s\n");
	ok(info.hint && info.hint_ttl_ms == 5000, "line comment hint");
	analyze("select 1 /* tether:cachex ttl=5s */");
	ok(!info.hint, "a longer word is not the hint");
	analyze("select '/* tether:cache ttl=5s */'");
	ok(!info.hint, "a hint inside a string is text");
	analyze("select 1 /* tether:cache ttl=bogus */");
	ok(info.hint && info.hint_ttl_ms == 0, "bad ttl: hint with default ttl");
}

static void reads(void)
{
	rd("select * from products where id = $1", "products");
	rd("SELECT p.name FROM Public.Products p JOIN orders o ON o.pid = p.id", "orders,public.products");
	rd("select * from a, b as bb, c cc(x, y) where a.x = b.x", "a,b,c");
	rd("select * from a join b on a.x = b.x, c", "a,b,c");
	rd("select * from a left join (b join c on b.x = c.x) on a.x = b.x", "a,b,c");
	rd("select * from (select * from inner_t) s join other o using (id)", "inner_t,other");
	rd("with recent as (select * from orders where d > now()) select * from recent join users u on true",
	   "orders,users");
	rd("with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select * from r", "");
	rd("select extract(year from created), substring(name from 2 for 3), trim(both ' ' from x) from t", "t");
	rd("select * from t where a is distinct from b", "t");
	rd("select * from \"MyTable\" join \"lower\" on true join \"a\"\"b\" on true", "\"MyTable\",\"a\"\"b\",lower");
	rd("select * from s.\"T\"", "s.\"T\"");
	rd("select * from generate_series(1, 3) g(i) join t on t.id = g.i", "t");
	rd("select x from t where x in (select y from u) and exists (select 1 from v)", "t,u,v");
	rd("select (select max(a) from m) from dual_t", "dual_t,m");
	rd("table products", "products");
	rd("values (1, 'a'), (2, 'b')", "");
	rd("(select a from t1) union (select a from t2)", "t1,t2");
	rd("select count(*) filter (where x > 0) over (partition by y) from t", "t");
	rd("select coalesce(sum(x), 0)::numeric(10,2) from t group by rollup(a)", "t");
	rd("select * from only parent", "parent");
	rd("select * from t, lateral (select * from u where u.id = t.id) l", "t,u");
	rd("select * from t cross join lateral unnest(t.arr) as x(v)", "t");
	rd("select now(), current_date, date_trunc('day', now()) from t", "t");
	rd("select * from t where x = any($1) order by y desc nulls last limit 10 offset 5", "t");
	rd("select array(select id from u), row(1, 2) from t", "t,u");
	rd("select cast(x as varchar(20)), x::character varying(3) from t", "t");
	rd("select * from t tablesample bernoulli (10) repeatable (1)", "t");
	rd("select pg_catalog.lower(x) from t", "t");
	rd("select json_agg(t) from (select * from orders) t", "orders");
	rd("  SELECT 1 ; ", "");
}

static void uncacheable_reads(void)
{
	const char *cases[] = {
		"select * from t for update",
		"select * from t for no key update",
		"select * from t for share",
		"select * from t for key share",
		"select * from t for update of t skip locked",
		"select random()",
		"select random() as r",
		"select 1 as a, clock_timestamp() as b from t",
		"select nextval('s')",
		"select * from t where x = pg_sleep(1)",
		"select txid_current()",
		"select pg_advisory_lock(1)",
		"select pg_try_advisory_xact_lock(1)",
		"select gen_random_uuid()",
		"select clock_timestamp()",
		"select current_setting('app.tenant')",
		"select 1; select 2",
		"",
		"   ;  ",
		"explain select * from t",
		"declare c cursor for select * from t",
		"show search_path",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		analyze(cases[i]);
		ok(!info.cacheable && info.why_not, "not cacheable: '%s' (%s)", cases[i], info.why_not ? info.why_not : "-");
	}
	analyze("select nextval('s')");
	ok(!info.invalidate_all && info.writes.n == 0, "nextval invalidates nothing (sequences are not cached)");
	analyze("select my_func(1)");
	ok(!info.cacheable && info.invalidate_all, "unknown function: not cacheable and invalidates everything");
	analyze("select * from my_srf(1)");
	ok(!info.cacheable && info.invalidate_all, "unknown set-returning function in FROM");
	analyze("select app.lower(x) from t");
	ok(!info.cacheable && info.invalidate_all, "schema-qualified user function");
	analyze("select \"Lower\"(x) from t");
	ok(!info.cacheable && info.invalidate_all, "quoted function name is a different function");

	const char *fns[] = { "my_func" };
	struct cache_sql_opts o = { .safe_functions = fns, .nsafe_functions = 1 };
	cache_sql_info_deinit(&info);
	const char *s = "select my_func(x) from t";
	ok(cache_sql_analyze(s, strlen(s), &o, &info) == 0 && info.cacheable && !info.invalidate_all,
	   "a configured safe function is cacheable");

	analyze("select * into newt from t");
	ok(!info.cacheable && info.invalidate_all, "SELECT INTO: not cacheable, creates a table");
	analyze("select * into temp newt from t");
	ok(info.creates_temp, "SELECT INTO TEMP creates a temp table");
}

static void writes(void)
{
	wr("INSERT INTO Orders (id, total) VALUES (1, 2)", "orders");
	wr("insert into s.\"Orders\"(id) values ($1) returning id", "s.\"Orders\"");
	wr("insert into t select * from u", "t");
	wr("insert into t values (nextval('t_id_seq'), now())", "t");
	wr("insert into t (a) values (1) on conflict (a) do update set b = excluded.b", "t");
	wr("insert into t (a) values (1) on conflict on constraint t_pk do nothing", "t");
	wr("UPDATE products SET price = price * 1.1 WHERE id = $1", "products");
	wr("update only p set (a, b) = (1, 2) from q where p.id = q.id", "p");
	wr("update t as x set a = lower(b)", "t");
	wr("DELETE FROM public.sessions WHERE expires < now()", "public.sessions");
	wr("delete from only t using u where t.id = u.id returning *", "t");
	wr("merge into target t using source s on t.id = s.id when matched then update set v = s.v "
	   "when not matched then insert (id, v) values (s.id, s.v) when matched and s.del then delete",
	   "target");
	wr("with moved as (delete from a where x returning *) insert into b select * from moved", "a,b");
	wr("with u as (update a set x = 1 returning id) select * from u", "a");
	wr("with x as (select 1) update t set a = 1", "t");
	wr("copy t from stdin", "t");
	wr("copy s.t (a, b) from '/tmp/f' with (format csv)", "s.t");
	wr("copy t to stdout", "");
	wr("copy (select * from t) to stdout", "");
	wr("begin; update a set x = 1; insert into b values (1); commit", "a,b");
	wr("explain analyze update t set a = 1", "t");
	wr("explain (analyze, buffers) delete from t", "t");
	wr("explain update t set a = 1", "");
	wr("update t set a = my_func(b)", NULL);
	wr("insert into t values (my_func())", NULL);
	wr("delete from t where id in (select id from u for update)", "t");
}

static void none(void)
{
	const char *cases[] = { "BEGIN", "begin isolation level serializable", "start transaction read only", "COMMIT",
				"end", "rollback", "rollback to savepoint s", "savepoint s", "release savepoint s",
				"set search_path = app, public", "set local statement_timeout = '5s'", "reset all",
				"show timezone", "discard all", "deallocate all", "listen ch", "notify ch, 'x'",
				"lock table t in exclusive mode", "fetch 10 from c", "close c", "checkpoint",
				"vacuum analyze t", "analyze t", "cluster t", "reindex table t", "comment on table t is 'x'",
				"prepare p as update t set a = 1", "prepare transaction 'x'", "rollback prepared 'x'",
				"create index on t (lower(x))", "create unique index concurrently i on t (a)",
				"drop index i", "alter index i rename to j", "create sequence s", "alter sequence s restart",
				"declare c cursor for select * from t" };
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		wr(cases[i], "");
}

static void ddl(void)
{
	wr("TRUNCATE a, s.b", "a,s.b");
	wr("truncate table only a restart identity", "a");
	wr("truncate a cascade", NULL);
	wr("drop table if exists a, \"B\"", "\"B\",a");
	wr("drop view v", "v");
	wr("drop materialized view if exists mv", "mv");
	wr("drop table a cascade", NULL);
	wr("drop function f(int)", NULL);
	wr("drop policy p on t", NULL);
	wr("alter table t add column c int default 0", "t");
	wr("alter table if exists only s.t alter column c type bigint", "s.t");
	wr("alter table t enable row level security", "t");
	wr("alter materialized view mv set tablespace x", "mv");
	wr("alter table t rename to u", NULL);
	wr("alter table t rename column a to b", NULL);
	wr("alter table t set schema other", NULL);
	wr("alter table all in tablespace a set tablespace b", NULL);
	wr("alter table t add constraint c check (my_check(x))", NULL);
	wr("alter role r set search_path = x", NULL);
	wr("refresh materialized view concurrently s.mv", "s.mv");
	wr("refresh materialized view mv with no data", "mv");
	wr("create table t (id int primary key, n numeric(10,2))", NULL);
	wr("create or replace view v as select * from t", NULL);
	wr("create materialized view mv as select 1", NULL);
	wr("create table t2 as select * from t", NULL);
	wr("grant select on t to r", NULL);
	wr("revoke select on t from r", NULL);
	analyze("create temp table tt (a int)");
	ok(info.creates_temp && info.ddl, "CREATE TEMP TABLE flagged");
	analyze("create global temporary table tt (a int)");
	ok(info.creates_temp, "CREATE GLOBAL TEMPORARY TABLE flagged");
	analyze("create table tt (a int)");
	ok(!info.creates_temp && info.ddl, "CREATE TABLE is not temp");
	analyze("alter table t add column c int");
	ok(info.ddl, "ALTER TABLE is DDL");
}

static void everything(void)
{
	wr("call proc(1)", NULL);
	wr("do $$ begin update t set a = 1; end $$", NULL);
	wr("execute p(1)", NULL);
	wr("commit prepared 'x'", NULL);
	wr("frobnicate the table", NULL);
	wr("select 1; call p()", NULL);
	wr("select my_writer()", NULL);
	wr("select my_writer() as b", NULL);
	wr("select 1, my_writer() as b, 2 from t", NULL);
	/* a user's operator runs a function tether does not know */
	wr("select id ### 1 from t where id = 1", NULL);
	wr("select a <~> b from t", NULL);
	wr("load 'plugin'", NULL);
	wr("import foreign schema s from server x into y", NULL);
}

static int64_t key_params[4] = { 3, 7, -2, 100 };

static int key_param(void *arg, int n, int64_t *v)
{
	if (n < 1 || n > 4)
		return -1;
	*v = key_params[n - 1];
	return 0;
}

/* The key constraints found, "table.col=lo" or "table.col=lo..hi" (with $1..$4 = 3, 7, -2,
 * 100; "?" where evaluation fails), comma-separated; writes end with " set:" and the columns. */
static const char *keys(const char *sql)
{
	static char buf[1024];
	analyze(sql);
	buf[0] = 0;
	const struct cache_sql_key *v = info.nwkeys ? info.wkeys : info.rkeys;
	size_t n = info.nwkeys ? info.nwkeys : info.nrkeys;
	for (size_t i = 0; i < n; i++) {
		int64_t lo = 0, hi = 0;
		bool l_ok = cache_sql_key_eval(&v[i].lo, key_param, NULL, &lo) == 0;
		bool h_ok = cache_sql_key_eval(&v[i].hi, key_param, NULL, &hi) == 0;
		char one[200];
		if (!l_ok || !h_ok)
			snprintf(one, sizeof(one), "%s.%s=?", v[i].table, v[i].column);
		else if (v[i].range)
			snprintf(one, sizeof(one), "%s.%s=%lld..%lld", v[i].table, v[i].column, (long long)lo, (long long)hi);
		else
			snprintf(one, sizeof(one), "%s.%s=%lld", v[i].table, v[i].column, (long long)lo);
		if (i)
			strcat(buf, ",");
		strcat(buf, one);
	}
	if (info.nwkeys) {
		strcat(buf, " set:");
		for (size_t i = 0; i < info.nwset; i++) {
			strcat(buf, i ? "," : "");
			strcat(buf, info.wset[i]);
		}
	}
	return buf;
}

static void key_constraints(void)
{
	/* reads */
	is_str(keys("select abalance from pgbench_accounts where aid = $1"), "pgbench_accounts.aid=3", "point lookup");
	is_str(keys("SELECT x FROM t WHERE id = 42 AND y > 3"), "t.id=42", "literal, other conjuncts ignored");
	is_str(keys("select x from t a where a.id = -$3 * 2 + 1"), "t.id=5", "alias and arithmetic");
	is_str(keys("select x from t where t.id = ($1 - 1) * 100000 + 1"), "t.id=200001", "parentheses");
	is_str(keys("select b.bbalance, count(*), sum(a.abalance) from pgbench_branches b join pgbench_accounts a on "
		    "a.bid = b.bid where b.bid = $1 and a.aid between ($1 - 1) * 100000 + 1 and ($1 - 1) * 100000 + "
		    "20000 group by b.bbalance"),
	       "pgbench_accounts.aid=200001..220000,pgbench_branches.bid=3", "the bench's join: both tables keyed");
	is_str(keys("select x from t where id = 1 or id = 2"), "", "OR: nothing");
	is_str(keys("select x from t where not id = 1"), "", "NOT: nothing");
	is_str(keys("select x from t a where t.id = 1"), "", "the table's name once aliased: not its qualifier");
	is_str(keys("select x from t a where b.id = 1"), "", "another qualifier");
	is_str(keys("select x from t where id = 1.5"), "", "a non-integer literal");
	is_str(keys("select x from t where id = '1'"), "", "a string literal");
	is_str(keys("select x from t where id = $1::int"), "", "a cast");
	is_str(keys("select x from t where id = f(1)"), "", "a function");
	is_str(keys("select x from t where id = 1 + y"), "", "a column in the expression");
	is_str(keys("select x from t where id between symmetric 5 and 1"), "", "BETWEEN SYMMETRIC");
	is_str(keys("select x from t where id not between 1 and 5"), "", "NOT BETWEEN");
	is_str(keys("select x from t where id between 1 and 5 and y = 2"), "t.id=1..5,t.y=2", "BETWEEN's AND");
	is_str(keys("select x from t join t u on true where t.id = 1"), "", "a table named twice");
	is_str(keys("select x from t, t.u where id = 1"), "t.id=1,t.u.id=1", "a schema of the same name is not the table");
	is_str(keys("select x from t where id = 1 and exists (select 1 from t where id = 2)"), "", "twice, subquery");
	is_str(keys("select x from u where u.k in (select id from t where id = 9)"), "t.id=9",
	       "the WHERE of the subquery that names it");
	is_str(keys("select x from t, lateral (select 1 from u where t.id = 4) s"), "", "a WHERE of another block");
	is_str(keys("select * from (select * from t limit 10) s where s.id = 5"), "", "outer WHERE over a LIMIT");
	is_str(keys("select x from u where id = 1 union select x from t where id = 2"), "t.id=2,u.id=1",
	       "each block of a UNION");
	is_str(keys("select x from t natural join u where id = 1"), "", "NATURAL join");
	is_str(keys("select x from t join u using (id) where id = 1"), "", "USING join");
	is_str(keys("select x from t where id = 99999999999999999999"), "", "too long a number");
	is_str(keys("select x from t where id = 999999999999999999 * 100"), "t.id=?", "overflow fails evaluation");
	is_str(keys("select x from t where id = $9"), "t.id=?", "a parameter without a value");
	is_str(keys("select x from s.t where t.id = 7"), "s.t.id=7", "schema-qualified name");
	is_str(keys("select x from \"T\" where id = 7"), "", "a quoted name");
	is_str(keys("select x from t where id = 1 for update"), "", "not cacheable: no read keys");
	/* writes */
	is_str(keys("update pgbench_accounts set abalance = abalance + $1 where aid = $2"),
	       "pgbench_accounts.aid=7 set:abalance", "the bench's write");
	is_str(keys("update t set (a, b) = (1, 2), c = 3 where id = 5 returning *"), "t.id=5 set:a,b,c", "SET list");
	is_str(keys("update t set id = 2 where id = 5"), "t.id=5 set:id", "the key set (the pooler checks)");
	is_str(keys("update only t x set a = 1 where x.id = 5"), "t.id=5 set:a", "ONLY and alias");
	is_str(keys("update t set a = 1 from u where t.id = u.id and t.id = 5"), "", "UPDATE ... FROM");
	is_str(keys("update t set a = 1 where id = 5 or id = 6"), "", "OR");
	is_str(keys("update t set a = 1 where current of c"), "", "CURRENT OF");
	is_str(keys("delete from t where id = 5"), "t.id=5 set:", "DELETE");
	is_str(keys("delete from t using u where t.id = 5"), "", "DELETE ... USING");
	is_str(keys("with x as (select 1) update t set a = 1 where id = 5"), "", "WITH ... UPDATE");
	is_str(keys("insert into t values (5)"), "", "INSERT");
	is_str(keys("update t set a = 1 where id = 5; select 1"), "", "two statements");
}

int main(void)
{
	key_constraints();
	normalization();
	fingerprints();
	hints();
	reads();
	uncacheable_reads();
	writes();
	none();
	ddl();
	everything();
	ok(cache_sql_function_safe("count") && !cache_sql_function_safe("my_func"), "safe list");
	/* built-in operators, including those the lexer runs into a unary sign */
	rd("select * from t where a=-1 and b<>+2 and c >= -3 and d @> '{1}' and e->>'k' = 'v'", "t");
	rd("select a || b, x::text, arr[1:2], j #>> '{a,b}' from t where r <-> p < 5", "t");
	ok(cache_sql_operator_builtin("=") && cache_sql_operator_builtin("<=-") && cache_sql_operator_builtin("@>") &&
		   !cache_sql_operator_builtin("###") && !cache_sql_operator_builtin("@-@-"),
	   "operator list (a trailing sign splits off unless the operator holds ~!@#%%^&|`?)");
	/* reads stay listed for an uncacheable single read (the pooler checks them for views) */
	analyze("select random() from v");
	is_str(names(&info.reads), "v", "an uncacheable read still lists what it reads");
	ok(cache_sql_function_volatile("pg_advisory_unlock_all") && !cache_sql_function_volatile("now"),
	   "volatile list (now() is cacheable: the TTL bounds it)");
	cache_sql_info_deinit(&info);
	return tap_done();
}
