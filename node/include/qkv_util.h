/*  qkv_util.h - small things every part uses: the one logging function,
    the monotonic clock, and a growable byte buffer.
*/
#ifndef QKV_UTIL_H
#define QKV_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Sets the node id every log line is prefixed with (copied). */
void qkv_log_set_id(const char *id);

/* Writes one line to stderr: time, node id, level, message. Thread-safe. */
void qkv_say(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define qkv_info(...) qkv_say("info", __VA_ARGS__)
#define qkv_warn(...) qkv_say("warn", __VA_ARGS__)
#define qkv_error(...) qkv_say("error", __VA_ARGS__)

/* Microseconds on the monotonic clock. */
int64_t qkv_now_us(void);

/* Backward-shift deletion for a linear-probing table of uint32 values (0 =
   empty) with mask + 1 slots: empties slot hole and moves later members of
   its run back so that every lookup still finds them. home(ctx, value)
   is the slot a value hashes to. */
void qkv_probe_unlink(uint32_t *table, size_t mask, size_t hole,
                      size_t (*home)(const void *ctx, uint32_t value),
                      const void *ctx);

/* A growable byte buffer. Zero-initialise, then append; free with
   qkv_buf_free. data is always NUL-terminated once anything was appended. */
typedef struct {
    char *data;  /* owned; NULL until the first append */
    size_t size; /* bytes in use, not counting the terminating NUL */
    size_t cap;  /* bytes allocated */
    int failed;  /* set once an allocation failed; appends are then no-ops */
} qkv_buf_t;

/* Makes room for extra more bytes; returns 0, or -1 (and sets failed). */
int qkv_buf_reserve(qkv_buf_t *self, size_t extra);
/* Appends bytes; returns 0 or -1 when out of memory. */
int qkv_buf_append(qkv_buf_t *self, const void *data, size_t size);
/* Appends formatted text; returns 0 or -1. */
int qkv_buf_printf(qkv_buf_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Empties the buffer, keeping its memory. */
void qkv_buf_reset(qkv_buf_t *self);
/* Frees the memory and zeroes the buffer. */
void qkv_buf_free(qkv_buf_t *self);

#endif
