/*  qkv_hash.c - a word-at-a-time byte hash, a 64-bit mixer and
    backward-shift deletion for linear-probing tables (qkv_hash.h).
*/
#include "qkv_hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>

/* Eight bytes at p as a little-endian number, whatever the machine. */
static uint64_t s_le64(const unsigned char *p, size_t n) {
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return w;
}

uint64_t qkv_hash_bytes(uint64_t seed, const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
    for (; len >= 8; p += 8, len -= 8) {
        h = (h ^ s_le64(p, 8)) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    /* the tail, with its length so "a\0" and "a" differ */
    h = (h ^ s_le64(p, len) ^ ((uint64_t)len << 56)) * 0x94d049bb133111ebULL;
    return qkv_hash_mix(h);
}

uint64_t qkv_hash_mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t qkv_xorshift64(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

uint64_t qkv_random64(void) {
    uint64_t x;
    while (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x))
        ; /* interrupted by a signal, or entropy not ready: again */
    return x;
}

/* One body for both widths: the run-walking is the same. */
#define S_PROBE_UNLINK(table, mask, hole, home, ctx)                           \
    do {                                                                       \
        size_t slot = hole;                                                    \
        for (;;) {                                                             \
            slot = (slot + 1) & mask;                                          \
            if (!table[slot])                                                  \
                break;                                                         \
            size_t h = home(ctx, table[slot]) & mask;                          \
            /* it moves back unless its home lies cyclically in                \
               (hole, slot] */                                                 \
            int stays = hole <= slot ? (h > hole && h <= slot)                 \
                                     : (h > hole || h <= slot);                \
            if (!stays) {                                                      \
                table[hole] = table[slot];                                     \
                hole = slot;                                                   \
            }                                                                  \
        }                                                                      \
        table[hole] = 0;                                                       \
    } while (0)

void qkv_probe_unlink(uint32_t *table, size_t mask, size_t hole,
                      size_t (*home)(const void *ctx, uint32_t value),
                      const void *ctx) {
    S_PROBE_UNLINK(table, mask, hole, home, ctx);
}

void qkv_probe_unlink64(uint64_t *table, size_t mask, size_t hole,
                        size_t (*home)(const void *ctx, uint64_t value),
                        const void *ctx) {
    S_PROBE_UNLINK(table, mask, hole, home, ctx);
}

/* One body for both widths, as above. */
#define S_PROBE_GROW(type, table, mask, slots, home, ctx)                      \
    do {                                                                       \
        type *grown = calloc(slots, sizeof(*grown));                           \
        if (!grown)                                                            \
            return -1;                                                         \
        for (size_t i = 0; *table && i <= *mask; i++) {                        \
            if (!(*table)[i])                                                  \
                continue;                                                      \
            size_t slot = home(ctx, (*table)[i]) & (slots - 1);                \
            while (grown[slot])                                                \
                slot = (slot + 1) & (slots - 1);                               \
            grown[slot] = (*table)[i];                                         \
        }                                                                      \
        free(*table);                                                          \
        *table = grown;                                                        \
        *mask = slots - 1;                                                     \
        return 0;                                                              \
    } while (0)

int qkv_probe_grow(uint32_t **table, size_t *mask, size_t slots,
                   size_t (*home)(const void *ctx, uint32_t value),
                   const void *ctx) {
    S_PROBE_GROW(uint32_t, table, mask, slots, home, ctx);
}

int qkv_probe_grow64(uint64_t **table, size_t *mask, size_t slots,
                     size_t (*home)(const void *ctx, uint64_t value),
                     const void *ctx) {
    S_PROBE_GROW(uint64_t, table, mask, slots, home, ctx);
}

/*  =====================================================================
    CRC-32C, slicing by eight: eight table lookups per eight bytes. */

static uint32_t s_crc_table[8][256];
static pthread_once_t s_crc_once = PTHREAD_ONCE_INIT;

static void s_crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        s_crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            s_crc_table[t][i] = (s_crc_table[t - 1][i] >> 8) ^
                                s_crc_table[0][s_crc_table[t - 1][i] & 0xFF];
}

uint32_t qkv_crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&s_crc_once, s_crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = s_crc_table[7][lo & 0xFF] ^ s_crc_table[6][(lo >> 8) & 0xFF] ^
              s_crc_table[5][(lo >> 16) & 0xFF] ^ s_crc_table[4][lo >> 24] ^
              s_crc_table[3][p[4]] ^ s_crc_table[2][p[5]] ^
              s_crc_table[1][p[6]] ^ s_crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ s_crc_table[0][(crc ^ *p++) & 0xFF];
    return ~crc;
}
