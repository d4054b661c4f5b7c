/* libFuzzer target feeding arbitrary bytes to every parser of the pg plugin's pure code: frames,
 * backend and frontend messages, name rewriting, startup packets, SCRAM (both sides), verifiers
 * and md5 responses. Build and run (from the repository root):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I daemon tests/fuzz/fuzz_pgproto.c \
 *     plugins/pg/pgproto.c plugins/pg/startup.c plugins/pg/scram.c plugins/pg/md5auth.c \
 *     -lssl -lcrypto -levent -o /tmp/fuzz_pgproto
 *   /tmp/fuzz_pgproto -max_total_time=60 -max_len=4096 /tmp/fuzz-corpus
 *
 * With -DFUZZ_STANDALONE (any compiler, no libFuzzer) main() replays the files given as
 * arguments, or runs random inputs for a number of seconds: fuzz_pgproto -t 30. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "../../plugins/pg/md5auth.h"
#include "../../plugins/pg/pgproto.h"
#include "../../plugins/pg/scram.h"
#include "../../plugins/pg/startup.h"

#define VERIFIER                                                                                   \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Results are consumed so warn_unused_result stays quiet; only memory safety matters here. */
static volatile int fuzz_sink;
#define SINK(x)                                                                                    \
	do {                                                                                       \
		if (x)                                                                             \
			fuzz_sink++;                                                               \
	} while (0)

/* Every parser on one message; results are ignored, only memory safety and termination matter. */
static void fuzz_message(const uint8_t *m, size_t n, struct evbuffer *out)
{
	struct pgproto_notice no;
	struct pgproto_auth a;
	struct pgproto_parse p;
	struct pgproto_bind b;
	struct pgproto_target t;
	const char *s1, *s2;
	const uint8_t *d;
	size_t dl;
	uint32_t u1, u2;
	uint8_t st;

	for (int k = 0; k < 2; k++) {
		if (pgproto_parse_notice(m, n, k ? 'N' : 'E', &no) == PGPROTO_OK)
			for (int c = 0; c < 256; c += 7)
				if ((s1 = pgproto_notice_field(&no, (uint8_t)c)))
					fuzz_sink += (int)strlen(s1);
		pgproto_notice_deinit(&no);
	}
	if (pgproto_parse_auth(m, n, &a) == PGPROTO_OK) {
		SINK(pgproto_auth_sasl_has(&a, "SCRAM-SHA-256"));
		SINK(pgproto_auth_sasl_has(&a, ""));
	}
	if (pgproto_parse_parameter_status(m, n, &s1, &s2) == PGPROTO_OK)
		fuzz_sink += (int)(strlen(s1) + strlen(s2));
	SINK(pgproto_parse_backend_key_data(m, n, &u1, &u2));
	SINK(pgproto_parse_ready_for_query(m, n, &st));
	if (pgproto_parse_password(m, n, &s1) == PGPROTO_OK)
		fuzz_sink += (int)strlen(s1);
	if (pgproto_parse_sasl_initial_response(m, n, &s1, &d, &dl) == PGPROTO_OK)
		fuzz_sink += (int)strlen(s1) + (dl ? d[dl - 1] : 0);
	if (pgproto_parse_sasl_response(m, n, &d, &dl) == PGPROTO_OK && dl)
		fuzz_sink += d[dl - 1];
	if (pgproto_parse_parse(m, n, &p) == PGPROTO_OK) {
		fuzz_sink += (int)(strlen(p.name) + strlen(p.query));
		for (uint16_t i = 0; i <= p.n_oids && i < 64; i++)
			SINK(pgproto_parse_oid(&p, i));
	}
	if (pgproto_parse_bind(m, n, &b) == PGPROTO_OK)
		fuzz_sink += (int)(strlen(b.portal) + strlen(b.stmt));
	if (pgproto_parse_close(m, n, &t) == PGPROTO_OK)
		fuzz_sink += (int)strlen(t.name);
	if (pgproto_parse_describe(m, n, &t) == PGPROTO_OK)
		fuzz_sink += (int)strlen(t.name);
	if (pgproto_parse_execute(m, n, &s1, &u1) == PGPROTO_OK)
		fuzz_sink += (int)strlen(s1);
	if (pgproto_parse_query(m, n, &s1) == PGPROTO_OK)
		fuzz_sink += (int)strlen(s1);
	if (pgproto_parse_command_complete(m, n, &s1) == PGPROTO_OK)
		fuzz_sink += (int)strlen(s1);
	if (pgproto_rewrite_name(out, m, n, "tether_s_1") == PGPROTO_OK) {
		/* A rewritten message must itself parse. */
		size_t rn = evbuffer_get_length(out);
		uint8_t *r = malloc(rn);
		evbuffer_remove(out, r, rn);
		int rc;
		switch (r[0]) {
		case 'P':
			rc = pgproto_parse_parse(r, rn, &p);
			break;
		case 'B':
			rc = pgproto_parse_bind(r, rn, &b);
			break;
		case 'C':
			rc = pgproto_parse_close(r, rn, &t);
			break;
		default:
			rc = pgproto_parse_describe(r, rn, &t);
			break;
		}
		if (rc != PGPROTO_OK)
			abort();
		free(r);
	}
	evbuffer_drain(out, evbuffer_get_length(out));
}

static void fuzz_scram(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	const uint8_t *m1 = data, *m2 = NULL;
	size_t n1 = size, n2 = 0;
	const char *out;
	size_t on;
	if (nl) {
		n1 = (size_t)(nl - data);
		m2 = nl + 1;
		n2 = size - n1 - 1;
	}

	struct scram_verifier v;
	struct scram_server s;
	if (scram_verifier_parse(VERIFIER, &v) != SCRAM_OK || scram_server_init(&s, &v) != SCRAM_OK ||
	    scram_server_set_nonce(&s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0") != SCRAM_OK)
		abort();
	if (scram_server_first(&s, m1, n1, &out, &on) == SCRAM_OK && m2)
		SINK(scram_server_final(&s, m2, n2, &out, &on));
	scram_server_deinit(&s);

	struct scram_client c;
	if (scram_client_init(&c, "user", "pencil") != SCRAM_OK || scram_client_set_nonce(&c, "rOprNGfwEbeRWgbNEkqO") != SCRAM_OK)
		abort();
	c.max_iterations = 8; /* keep PBKDF2 cheap; larger counts are refused as out of range */
	if (scram_client_start(&c, &out, &on) == SCRAM_OK && scram_client_continue(&c, m1, n1, &out, &on) == SCRAM_OK &&
	    m2)
		SINK(scram_client_finish(&c, m2, n2));
	scram_client_deinit(&c);

	char *z = malloc(size + 1);
	memcpy(z, data, size);
	z[size] = '\0';
	if (scram_verifier_parse(z, &v) == SCRAM_OK) {
		char buf[SCRAM_VERIFIER_MAX_LEN];
		if (scram_verifier_format(&v, buf, sizeof(buf)) != SCRAM_OK)
			abort();
	}
	static const uint8_t salt[4] = { 1, 2, 3, 4 };
	SINK(md5auth_verify(z, "user", salt, z));
	SINK(md5auth_verify("md58213e4d0d5792b064442db7988e9f4c4", "user", salt, z));
	free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t types[] = { 'E', 'N', 'R', 'S', 'K', 'Z', 'p', 'P', 'B', 'C', 'D', 'Q', 'E', 'X' };
	struct pgproto_frame f;
	struct startup st;
	struct evbuffer *out = evbuffer_new();
	if (!out)
		return 0;

	SINK(pgproto_frame_read(data, size, false, 1u << 20, &f));
	SINK(pgproto_frame_read(data, size, true, STARTUP_MAX_PACKET, &f));
	fuzz_message(data, size, out);
	if (startup_parse(data, size, &st) == STARTUP_OK && st.kind == STARTUP_KIND_MESSAGE) {
		fuzz_sink += (int)(strlen(st.user) + strlen(st.database));
		for (size_t i = 0; i < st.n_params; i++)
			fuzz_sink += (int)(strlen(st.params[i].key) + strlen(st.params[i].value));
		SINK(startup_get(&st, "TimeZone"));
	}
	startup_deinit(&st);

	/* The same bytes behind a consistent header, so parsers get past the length check. */
	if (size >= 1) {
		uint8_t *m = malloc(size + 4);
		size_t len = size - 1 + 4;
		m[0] = types[data[0] % sizeof(types)];
		m[1] = (uint8_t)(len >> 24);
		m[2] = (uint8_t)(len >> 16);
		m[3] = (uint8_t)(len >> 8);
		m[4] = (uint8_t)len;
		memcpy(m + 5, data + 1, size - 1);
		fuzz_message(m, size + 4, out);
		/* And as a startup packet: length word, then the bytes (code first). */
		size_t sl = size - 1 + 4;
		uint8_t *sp = m + 1; /* reuse: length word at m[1..4] is already sl */
		if (startup_parse(sp, sl, &st) == STARTUP_OK)
			SINK(startup_get(&st, "database"));
		startup_deinit(&st);
		free(m);
	}
	fuzz_scram(data, size);
	evbuffer_free(out);
	return 0;
}

#ifdef FUZZ_STANDALONE
#include <time.h>

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "-t") == 0) {
		time_t end = time(NULL) + atoi(argv[2]);
		unsigned long runs = 0;
		uint8_t buf[2048];
		srand((unsigned)time(NULL));
		while (time(NULL) < end) {
			size_t n = (size_t)rand() % sizeof(buf);
			for (size_t i = 0; i < n; i++)
				buf[i] = (uint8_t)rand();
			LLVMFuzzerTestOneInput(buf, n);
			runs++;
		}
		printf("%lu random inputs\n", runs);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		FILE *fp = fopen(argv[i], "rb");
		if (!fp)
			continue;
		static uint8_t buf[1 << 20];
		size_t n = fread(buf, 1, sizeof(buf), fp);
		fclose(fp);
		LLVMFuzzerTestOneInput(buf, n);
	}
	return 0;
}
#endif
