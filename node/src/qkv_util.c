/*  qkv_util.c - logging with the node id, the monotonic clock, and the
    growable buffer every part formats into.
*/
#include "qkv_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char s_node_id[128] = "qkv";

void qkv_log_set_id(const char *id) {
    snprintf(s_node_id, sizeof(s_node_id), "%s", id);
}

void qkv_say(const char *level, const char *fmt, ...) {
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(
        line, sizeof(line),
        "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        ts.tv_nsec / 1000000, s_node_id, level);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* one fputs per line keeps lines whole across threads */
    size_t len = strlen(line);
    if (len + 1 < sizeof(line)) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
}

int64_t qkv_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void qkv_probe_unlink(uint32_t *table, size_t mask, size_t hole,
                      size_t (*home)(const void *ctx, uint32_t value),
                      const void *ctx) {
    size_t slot = hole;
    for (;;) {
        slot = (slot + 1) & mask;
        if (!table[slot])
            break;
        size_t h = home(ctx, table[slot]) & mask;
        /* it moves back unless its home lies cyclically in (hole, slot] */
        int stays =
            hole <= slot ? (h > hole && h <= slot) : (h > hole || h <= slot);
        if (!stays) {
            table[hole] = table[slot];
            hole = slot;
        }
    }
    table[hole] = 0;
}

int qkv_buf_reserve(qkv_buf_t *self, size_t extra) {
    if (self->failed)
        return -1;
    if (self->size + extra + 1 <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < self->size + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            self->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *data = realloc(self->data, cap);
    if (!data) {
        self->failed = 1;
        return -1;
    }
    self->data = data;
    self->cap = cap;
    return 0;
}

int qkv_buf_append(qkv_buf_t *self, const void *data, size_t size) {
    if (qkv_buf_reserve(self, size) != 0)
        return -1;
    if (size)
        memcpy(self->data + self->size, data, size);
    self->size += size;
    self->data[self->size] = '\0';
    return 0;
}

int qkv_buf_printf(qkv_buf_t *self, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(small))
        return qkv_buf_append(self, small, (size_t)n);
    if (qkv_buf_reserve(self, (size_t)n) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(self->data + self->size, (size_t)n + 1, fmt, ap);
    va_end(ap);
    self->size += (size_t)n;
    return 0;
}

void qkv_buf_reset(qkv_buf_t *self) {
    self->size = 0;
    self->failed = 0;
    if (self->data)
        self->data[0] = '\0';
}

void qkv_buf_free(qkv_buf_t *self) {
    free(self->data);
    memset(self, 0, sizeof(*self));
}
