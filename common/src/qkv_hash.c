/*  qkv_hash.c - FNV-1a, a 64-bit mixer and backward-shift deletion for
    linear-probing tables (qkv_hash.h).
*/
#include "qkv_hash.h"

uint64_t qkv_hash_bytes(uint64_t seed, const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t qkv_hash_mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
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
