/* TLS on both sides of the pooler with OpenSSL bufferevent filters: clients that send
 * SSLRequest when postgres.tls has a certificate, and servers per database `sslmode`
 * (prefer / require without verification, verify-ca / verify-full against `sslrootcert`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pg_internal.h"

static void pg_tls_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown TLS error");
	ERR_clear_error();
}

int pg_tls_init(struct pg *pg, char *err, size_t errlen)
{
	const struct pg_conf_tls *t = &pg->conf->tls;
	if (t->cert_file && *t->cert_file) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
		    SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			char e[256];
			pg_tls_errstr(e, sizeof(e));
			snprintf(err, errlen, "postgres.tls: cannot use %s / %s: %s", t->cert_file, t->key_file, e);
			SSL_CTX_free(ctx);
			return -1;
		}
		pg->tls_ctx = ctx;
	}
	for (size_t i = 0; i < pg->npools; i++) {
		struct pg_pool *p = &pg->pools[i];
		const struct pg_conf_db *db = p->db;
		if (db->sslmode == PG_SSL_DISABLE || db->host[0] == '/')
			continue;
		SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
		if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
			SSL_CTX_free(ctx);
			snprintf(err, errlen, "postgres.databases.%s: cannot create a TLS context", p->name);
			return -1;
		}
		if (db->sslmode >= PG_SSL_VERIFY_CA) {
			if (SSL_CTX_load_verify_locations(ctx, db->sslrootcert, NULL) != 1) {
				char e[256];
				pg_tls_errstr(e, sizeof(e));
				snprintf(err, errlen, "postgres.databases.%s.sslrootcert: cannot load %s: %s", p->name,
					 db->sslrootcert, e);
				SSL_CTX_free(ctx);
				return -1;
			}
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		} else {
			SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* prefer/require: encryption only, as libpq */
		}
		p->tls_ctx = ctx;
	}
	return 0;
}

void pg_tls_free(struct pg *pg)
{
	SSL_CTX_free(pg->tls_ctx);
	pg->tls_ctx = NULL;
	for (size_t i = 0; i < pg->npools; i++) {
		SSL_CTX_free(pg->pools[i].tls_ctx);
		pg->pools[i].tls_ctx = NULL;
	}
}

/* Puts a TLS filter over `bev`; returns the new bufferevent (owning `bev`) or NULL. */
static struct bufferevent *pg_tls_wrap(struct pg *pg, struct bufferevent *bev, SSL_CTX *ctx, bool accept,
				       const char *verify_host)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	if (verify_host) {
		/* verify-full: the certificate must name the host (DNS name or IP address) */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, verify_host) != 1) {
			SSL_free(ssl);
			return NULL;
		}
		if (!accept)
			SSL_set_tlsext_host_name(ssl, verify_host);
	}
	struct bufferevent *f = bufferevent_openssl_filter_new(
		core_base(pg->core), bev, ssl, accept ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
		BEV_OPT_CLOSE_ON_FREE);
	if (!f)
		SSL_free(ssl);
	return f;
}

bool pg_tls_client_offered(const struct pg *pg)
{
	return pg->tls_ctx != NULL;
}

int pg_tls_client_start(struct pg_client *c)
{
	/* the bare socket becomes a bufferevent under libevent's TLS filter; 'S' goes first, plain */
	struct bufferevent *bev = pg_io_bufferevent(&c->out), *f = NULL;
	if (!bev)
		return -1;
	bufferevent_enable(bev, EV_WRITE);
	if (bufferevent_write(bev, "S", 1) != 0 || !(f = pg_tls_wrap(c->pg, bev, c->pg->tls_ctx, true, NULL))) {
		bufferevent_free(bev);
		return -1;
	}
	c->bev = f;
	c->tls = true;
	bufferevent_setwatermark(f, EV_WRITE, PG_RELAY_LOW, 0);
	bufferevent_enable(f, EV_READ | EV_WRITE);
	pg_out_attach(c->pg, &c->out, f, false); /* (its callbacks: the client's pg_io_cbs) */
	return 0;
}

int pg_tls_server_start(struct pg_server *s)
{
	const struct pg_conf_db *db = s->pool->db;
	struct bufferevent *f =
		pg_tls_wrap(s->pool->pg, s->bev, s->pool->tls_ctx, false, db->sslmode == PG_SSL_VERIFY_FULL ? db->host : NULL);
	if (!f)
		return -1;
	s->bev = f;
	s->tls = PG_TLS_HANDSHAKE;
	return 0;
}

/* Why a TLS connection failed, for the log and the client (never key material). */
void pg_tls_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (vr != X509_V_OK)
		snprintf(buf, len, "TLS certificate verification failed: %s", X509_verify_cert_error_string(vr));
	else if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "TLS connection failed");
	while (bufferevent_get_openssl_error(bev))
		;
}

/* ---- writing a last message and closing, through TLS if need be ------------------------ */

struct pg_linger {
	struct pg_linger *next, *prev;
	struct pg *pg;
	struct bufferevent *bev;
	struct event *ev;
	int ticks;
};

static void pg_linger_free(struct pg_linger *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		l->pg->lingering = l->next;
	if (l->next)
		l->next->prev = l->prev;
	struct pg *pg = l->pg;
	bufferevent_free(l->bev);
	event_free(l->ev);
	free(l);
	if (pg->draining)
		pg_maybe_drained(pg);
}

static void pg_linger_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pg_linger *l = arg;
	struct bufferevent *u = bufferevent_get_underlying(l->bev);
	bool empty = evbuffer_get_length(bufferevent_get_output(l->bev)) == 0 &&
		     (!u || evbuffer_get_length(bufferevent_get_output(u)) == 0);
	if (empty || ++l->ticks >= 100) /* written, or 1 s passed: a client that reads nothing */
		pg_linger_free(l);
}

void pg_tls_linger(struct pg *pg, struct bufferevent *bev)
{
	struct pg_linger *l = calloc(1, sizeof(*l));
	if (l)
		l->ev = event_new(core_base(pg->core), -1, EV_PERSIST, pg_linger_tick, l);
	if (!l || !l->ev) {
		free(l);
		bufferevent_free(bev);
		return;
	}
	l->pg = pg;
	l->bev = bev;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(bev, EV_READ);
	bufferevent_enable(bev, EV_WRITE); /* (a direct-write connection had it off) */
	l->next = pg->lingering;
	if (l->next)
		l->next->prev = l;
	pg->lingering = l;
	struct timeval tv = { 0, 10000 };
	event_add(l->ev, &tv);
}

void pg_tls_linger_stop(struct pg *pg)
{
	while (pg->lingering)
		pg_linger_free(pg->lingering);
}
