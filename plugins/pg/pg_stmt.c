/* Prepared-statement bookkeeping for transaction pooling: the pool's registry of distinct
 * statements, each client's name map and each server's bounded set, all chained hash tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "pg_stmt.h"

struct pg_stmt_name {
	struct pg_stmt_name *next;
	struct pg_stmt *stmt;
	uint64_t hash;
	char name[];
};

struct pg_stmt_slot {
	struct pg_stmt_slot *next;
	struct pg_stmt_slot *lru_prev, *lru_next;
	struct pg_stmt *stmt;
};

static uint64_t pg_stmt_seed;

/* FNV-1a, seeded per process so clients cannot aim for one hash chain. */
static uint64_t pg_stmt_hash(const void *data, size_t len)
{
	if (!pg_stmt_seed && getrandom(&pg_stmt_seed, sizeof(pg_stmt_seed), 0) != sizeof(pg_stmt_seed))
		pg_stmt_seed = 0x9e3779b97f4a7c15ull;
	uint64_t h = 0xcbf29ce484222325ull ^ pg_stmt_seed;
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 29);
}

/* Doubles a chained table of `elem`-linked nodes when it is over 3/4 full. */
#define PG_STMT_GROW(tbl, type, hashof)                                                        \
	do {                                                                                   \
		if ((tbl)->n * 4 < (tbl)->nb * 3)                                              \
			break;                                                                 \
		size_t nb_ = (tbl)->nb ? (tbl)->nb * 2 : 16;                                   \
		type **b_ = calloc(nb_, sizeof(*b_));                                          \
		if (!b_)                                                                       \
			break; /* keep the old table: longer chains, still correct */           \
		for (size_t i_ = 0; i_ < (tbl)->nb; i_++) {                                    \
			type *e_ = (tbl)->b[i_];                                               \
			while (e_) {                                                           \
				type *nx_ = e_->next;                                          \
				size_t k_ = (size_t)(hashof(e_) % nb_);                        \
				e_->next = b_[k_];                                             \
				b_[k_] = e_;                                                   \
				e_ = nx_;                                                      \
			}                                                                      \
		}                                                                              \
		free((tbl)->b);                                                                \
		(tbl)->b = b_;                                                                 \
		(tbl)->nb = nb_;                                                               \
	} while (0)

#define PG_STMT_HASH_OF(e) ((e)->hash)
#define PG_STMT_SLOT_HASH_OF(e) ((e)->stmt->hash)

struct pg_stmt *pg_stmt_intern(struct pg_stmt_registry *r, const unsigned char *body, size_t len)
{
	uint64_t h = pg_stmt_hash(body, len);
	if (r->nb) {
		for (struct pg_stmt *st = r->b[h % r->nb]; st; st = st->next) {
			if (st->hash == h && st->body_len == len && memcmp(st->body, body, len) == 0) {
				st->refs++;
				return st;
			}
		}
	}
	PG_STMT_GROW(r, struct pg_stmt, PG_STMT_HASH_OF);
	if (!r->nb)
		return NULL;
	struct pg_stmt *st = malloc(sizeof(*st) + len);
	if (!st)
		return NULL;
	st->hash = h;
	st->refs = 1;
	st->body_len = (uint32_t)len;
	snprintf(st->sname, sizeof(st->sname), "tether_%llu", (unsigned long long)++r->next_id);
	memcpy(st->body, body, len);
	size_t k = h % r->nb;
	st->next = r->b[k];
	r->b[k] = st;
	r->n++;
	return st;
}

void pg_stmt_ref(struct pg_stmt *st)
{
	st->refs++;
}

void pg_stmt_unref(struct pg_stmt_registry *r, struct pg_stmt *st)
{
	if (--st->refs > 0)
		return;
	struct pg_stmt **pp = &r->b[st->hash % r->nb];
	while (*pp != st)
		pp = &(*pp)->next;
	*pp = st->next;
	r->n--;
	free(st);
}

void pg_stmt_registry_free(struct pg_stmt_registry *r)
{
	for (size_t i = 0; i < r->nb; i++) {
		while (r->b[i]) {
			struct pg_stmt *st = r->b[i];
			r->b[i] = st->next;
			free(st);
		}
	}
	free(r->b);
	memset(r, 0, sizeof(*r));
}

/* ---- a client's names ------------------------------------------------------------------ */

static struct pg_stmt_name **pg_stmt_map_find(const struct pg_stmt_map *m, const char *name, uint64_t h)
{
	if (!m->nb)
		return NULL;
	struct pg_stmt_name **pp = &m->b[h % m->nb];
	while (*pp && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0))
		pp = &(*pp)->next;
	return *pp ? pp : NULL;
}

struct pg_stmt *pg_stmt_map_get(const struct pg_stmt_map *m, const char *name)
{
	struct pg_stmt_name **pp = pg_stmt_map_find(m, name, pg_stmt_hash(name, strlen(name)));
	return pp ? (*pp)->stmt : NULL;
}

int pg_stmt_map_put(struct pg_stmt_map *m, struct pg_stmt_registry *r, const char *name, struct pg_stmt *st)
{
	size_t nl = strlen(name);
	uint64_t h = pg_stmt_hash(name, nl);
	struct pg_stmt_name **pp = pg_stmt_map_find(m, name, h);
	pg_stmt_ref(st);
	if (pp) {
		pg_stmt_unref(r, (*pp)->stmt);
		(*pp)->stmt = st;
		return 0;
	}
	PG_STMT_GROW(m, struct pg_stmt_name, PG_STMT_HASH_OF);
	struct pg_stmt_name *e = m->nb ? malloc(sizeof(*e) + nl + 1) : NULL;
	if (!e) {
		pg_stmt_unref(r, st);
		return -1;
	}
	e->stmt = st;
	e->hash = h;
	memcpy(e->name, name, nl + 1);
	e->next = m->b[h % m->nb];
	m->b[h % m->nb] = e;
	m->n++;
	return 0;
}

int pg_stmt_map_del(struct pg_stmt_map *m, struct pg_stmt_registry *r, const char *name)
{
	struct pg_stmt_name **pp = pg_stmt_map_find(m, name, pg_stmt_hash(name, strlen(name)));
	if (!pp)
		return 0;
	struct pg_stmt_name *e = *pp;
	*pp = e->next;
	pg_stmt_unref(r, e->stmt);
	free(e);
	m->n--;
	return 1;
}

void pg_stmt_map_clear(struct pg_stmt_map *m, struct pg_stmt_registry *r)
{
	for (size_t i = 0; i < m->nb; i++) {
		while (m->b[i]) {
			struct pg_stmt_name *e = m->b[i];
			m->b[i] = e->next;
			pg_stmt_unref(r, e->stmt);
			free(e);
		}
	}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

/* ---- a server's prepared set ----------------------------------------------------------- */

static struct pg_stmt_slot **pg_stmt_set_find(const struct pg_stmt_set *s, const struct pg_stmt *st)
{
	if (!s->nb)
		return NULL;
	struct pg_stmt_slot **pp = &s->b[st->hash % s->nb];
	while (*pp && (*pp)->stmt != st)
		pp = &(*pp)->next;
	return *pp ? pp : NULL;
}

static void pg_stmt_lru_unlink(struct pg_stmt_set *s, struct pg_stmt_slot *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		s->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		s->lru_tail = e->lru_prev;
}

static void pg_stmt_lru_push(struct pg_stmt_set *s, struct pg_stmt_slot *e)
{
	e->lru_prev = NULL;
	e->lru_next = s->lru_head;
	if (s->lru_head)
		s->lru_head->lru_prev = e;
	else
		s->lru_tail = e;
	s->lru_head = e;
}

int pg_stmt_set_has(struct pg_stmt_set *s, const struct pg_stmt *st)
{
	struct pg_stmt_slot **pp = pg_stmt_set_find(s, st);
	if (!pp)
		return 0;
	if (s->lru_head != *pp) {
		pg_stmt_lru_unlink(s, *pp);
		pg_stmt_lru_push(s, *pp);
	}
	return 1;
}

int pg_stmt_set_add(struct pg_stmt_set *s, struct pg_stmt *st)
{
	if (pg_stmt_set_has(s, st))
		return 0;
	PG_STMT_GROW(s, struct pg_stmt_slot, PG_STMT_SLOT_HASH_OF);
	struct pg_stmt_slot *e = s->nb ? malloc(sizeof(*e)) : NULL;
	if (!e)
		return -1;
	pg_stmt_ref(st);
	e->stmt = st;
	e->next = s->b[st->hash % s->nb];
	s->b[st->hash % s->nb] = e;
	pg_stmt_lru_push(s, e);
	s->n++;
	return 0;
}

void pg_stmt_set_del(struct pg_stmt_set *s, struct pg_stmt_registry *r, const struct pg_stmt *st)
{
	struct pg_stmt_slot **pp = pg_stmt_set_find(s, st);
	if (!pp)
		return;
	struct pg_stmt_slot *e = *pp;
	*pp = e->next;
	pg_stmt_lru_unlink(s, e);
	s->n--;
	pg_stmt_unref(r, e->stmt);
	free(e);
}

struct pg_stmt *pg_stmt_set_oldest(const struct pg_stmt_set *s)
{
	return s->lru_tail ? s->lru_tail->stmt : NULL;
}

void pg_stmt_set_clear(struct pg_stmt_set *s, struct pg_stmt_registry *r)
{
	struct pg_stmt_slot *e = s->lru_head;
	while (e) {
		struct pg_stmt_slot *nx = e->lru_next;
		pg_stmt_unref(r, e->stmt);
		free(e);
		e = nx;
	}
	free(s->b);
	memset(s, 0, sizeof(*s));
}
