/* The answers a server still owes, in order: which ParseComplete, CloseComplete and
 * ReadyForQuery belong to the client and which to tether's own messages, and what an error
 * makes the server skip. */
#include <stdlib.h>

#include "pg_internal.h"

static bool pg_expect_is_ready(uint8_t kind)
{
	return kind == PG_EXP_SYNC || kind == PG_EXP_QUERY_DROP;
}

int pg_expect_push(struct pg_server *s, enum pg_expect_kind kind, struct pg_stmt *st)
{
	/* after an error the server ignores everything up to the client's next Sync */
	if (s->skip_till_sync && !pg_expect_is_ready(kind))
		return 0;
	if (s->exp_n == s->exp_cap) {
		uint32_t cap = s->exp_cap ? s->exp_cap * 2 : 8;
		struct pg_expect *n = malloc(cap * sizeof(*n));
		if (!n)
			return -1;
		for (uint32_t i = 0; i < s->exp_n; i++)
			n[i] = s->exp[(s->exp_head + i) % s->exp_cap];
		free(s->exp);
		s->exp = n;
		s->exp_cap = cap;
		s->exp_head = 0;
	}
	if (st)
		pg_stmt_ref(st);
	s->exp[(s->exp_head + s->exp_n) % s->exp_cap] = (struct pg_expect){ (uint8_t)kind, st };
	s->exp_n++;
	if (pg_expect_is_ready(kind)) {
		s->pending_sync++;
		s->skip_till_sync = false;
	}
	return 0;
}

/* Removes the head; `refused` = its Parse never took effect on the server. */
static uint8_t pg_expect_pop(struct pg_server *s, bool refused)
{
	struct pg_expect e = s->exp[s->exp_head];
	s->exp_head = (s->exp_head + 1) % s->exp_cap;
	s->exp_n--;
	if (pg_expect_is_ready(e.kind))
		s->pending_sync--;
	if (e.stmt) {
		if (refused)
			pg_stmt_set_del(&s->stmts, &s->pool->stmts, e.stmt);
		pg_stmt_unref(&s->pool->stmts, e.stmt);
	}
	return e.kind;
}

void pg_expect_clear(struct pg_server *s)
{
	while (s->exp_n)
		pg_expect_pop(s, false);
	free(s->exp);
	s->exp = NULL;
	s->exp_cap = s->exp_head = 0;
	s->pending_sync = 0;
}

enum pg_expect_action pg_expect_complete(struct pg_server *s, uint8_t type)
{
	if (!s->exp_n)
		return PG_EXP_DESYNC;
	uint8_t k = s->exp[s->exp_head].kind;
	if (type == '1' && (k == PG_EXP_PARSE || k == PG_EXP_PARSE_DROP)) {
		pg_expect_pop(s, false);
		return k == PG_EXP_PARSE ? PG_EXP_PASS : PG_EXP_DROP;
	}
	if (type == '3' && (k == PG_EXP_CLOSE || k == PG_EXP_CLOSE_AS_PARSE || k == PG_EXP_CLOSE_DROP)) {
		pg_expect_pop(s, false);
		return k == PG_EXP_CLOSE ? PG_EXP_PASS : k == PG_EXP_CLOSE_DROP ? PG_EXP_DROP : PG_EXP_AS_PARSE;
	}
	return PG_EXP_DESYNC;
}

void pg_expect_error(struct pg_server *s)
{
	/* the failed message and everything after it up to Sync get no answer */
	while (s->exp_n && !pg_expect_is_ready(s->exp[s->exp_head].kind))
		pg_expect_pop(s, true);
	if (!s->exp_n)
		s->skip_till_sync = true;
}

enum pg_expect_action pg_expect_ready(struct pg_server *s)
{
	if (!s->exp_n)
		return PG_EXP_DESYNC;
	uint8_t k = s->exp[s->exp_head].kind;
	if (!pg_expect_is_ready(k))
		return PG_EXP_DESYNC;
	pg_expect_pop(s, false);
	return k == PG_EXP_SYNC ? PG_EXP_PASS : PG_EXP_DROP;
}
