/* A cache miss's answer as the server sends it, kept (up to the cache's max_entry_size) from the
 * first message the client's request expects through CommandComplete, to be stored once the
 * request ends well; anything that may not be replayed (an error, a notice) spoils it. */
#include "pg_cache.h"

#include <string.h>

#include <event2/buffer.h>

#include "pg_cache_internal.h"
#include "pg_internal.h"

static void pg_cache_capture_add(struct pg_cache_client *cc, const void *data, struct evbuffer *in, size_t n)
{
	if (!cc->cap || cc->cap_bad)
		return;
	if (evbuffer_get_length(cc->cap) + n > cache_max_entry_size(cache_instance())) {
		cc->cap_bad = cc->cap_big = true;
		evbuffer_free(cc->cap);
		cc->cap = NULL;
		return;
	}
	if (data) {
		if (evbuffer_add(cc->cap, data, n) != 0)
			cc->cap_bad = true;
		return;
	}
	size_t at = evbuffer_get_length(cc->cap);
	if (evbuffer_expand(cc->cap, n) != 0) {
		cc->cap_bad = true;
		return;
	}
	struct evbuffer_iovec v;
	if (evbuffer_reserve_space(cc->cap, (ev_ssize_t)n, &v, 1) < 1 || v.iov_len < n ||
	    evbuffer_copyout(in, v.iov_base, n) != (ev_ssize_t)n) {
		cc->cap_bad = true;
		return;
	}
	v.iov_len = n;
	if (evbuffer_commit_space(cc->cap, &v, 1) != 0 || evbuffer_get_length(cc->cap) != at + n)
		cc->cap_bad = true;
}

static bool pg_cache_capture_type_ok(uint8_t type)
{
	/* ParseComplete, BindComplete, ParameterDescription, RowDescription, NoData, DataRow,
	 * CommandComplete: anything else (an error, a notice, a setting) is not stored */
	return type && strchr("12tTnDC", type) != NULL;
}

void pg_cache_capture(struct pg_client *c, struct evbuffer *in, size_t n, uint8_t type, bool start)
{
	struct pg_cache_client *cc = c->cache;
	if (!cc || !cc->fill || cc->cap_bad)
		return;
	if (start && !pg_cache_capture_type_ok(type)) {
		cc->cap_bad = true;
		return;
	}
	pg_cache_capture_add(cc, NULL, in, n);
}

void pg_cache_capture_bytes(struct pg_client *c, const void *data, size_t n, uint8_t type)
{
	struct pg_cache_client *cc = c->cache;
	if (!cc || !cc->fill || cc->cap_bad)
		return;
	if (!pg_cache_capture_type_ok(type)) {
		cc->cap_bad = true;
		return;
	}
	pg_cache_capture_add(cc, data, NULL, n);
}

