/*  qkv_le.h - fixed-width little-endian numbers in byte buffers, the
    byte order of every file qkv writes (docs/DATA.md), whatever the
    machine's own.
*/
#ifndef QKV_LE_H
#define QKV_LE_H

#include <stdint.h>

static inline void qkv_put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void qkv_put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t qkv_get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t qkv_get_le64(const uint8_t *p) {
    return (uint64_t)qkv_get_le32(p) | (uint64_t)qkv_get_le32(p + 4) << 32;
}

/* Parses exactly 16 lowercase hex digits (a number in a file name).
   Returns 0 and sets *out, or -1. */
static inline int qkv_parse_hex16(const char *s, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

#endif
