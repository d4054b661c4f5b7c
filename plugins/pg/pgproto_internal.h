/* Helpers shared by pgproto.c (builders) and pgproto_parse.c (parsers). */
#ifndef TETHER_PGPROTO_INTERNAL_H
#define TETHER_PGPROTO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct pgproto_target;
/* Close or Describe ('C' / 'D', `type`): kind byte and name. */
int pgproto_parse_target(const uint8_t *msg, size_t len, uint8_t type, struct pgproto_target *t);

/* PostgreSQL refuses messages of 1 GiB or more (MaxAllocSize); never build one. */
#define PGPROTO_MAX_LEN 0x3fffffffu

static inline uint32_t pgproto_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint16_t pgproto_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

#endif
