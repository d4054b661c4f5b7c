/* Helpers shared by the config loader (conf.c) and its printers (conf_print.c). */
#ifndef TETHER_CONF_INTERNAL_H
#define TETHER_CONF_INTERNAL_H

#include "conf.h"

void conf_free_obj(const struct conf_table *t, void *obj);
void conf_free_array(const struct conf_key *k, struct conf_array *a);
/* Formats an INT/DURATION/SIZE value the way a user writes it ("30s", "64KiB", "12"). */
void conf_format_value(enum conf_type type, int64_t v, char *buf, size_t len);

#endif
