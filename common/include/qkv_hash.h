/*  qkv_hash.h - hashing and the probing helper of qkv's open-addressing
    tables (store, sessions, client peers). Every node computes the same
    hashes: they decide nothing but table slots, except qkv_hash_bytes,
    whose value sessions compare across nodes and restarts. And the
    node's one source of random bits for seeds, secrets and ids.
*/
#ifndef QKV_HASH_H
#define QKV_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A 64-bit hash of len bytes, continuing from seed (start with
   QKV_HASH_SEED), eight bytes at a time. Stable across builds and
   machines (bytes are read as little-endian numbers): nodes compare the
   hashes of writes they computed apart. Not for hostile keys' worst case:
   tables that take keys from clients bound their probing by load. */
#define QKV_HASH_SEED 0xcbf29ce484222325ULL
uint64_t qkv_hash_bytes(uint64_t seed, const void *data, size_t len);

/* CRC-32C (Castagnoli, as iSCSI and ext4 use) of len bytes, continuing
   from crc (start with 0): the checksum of every record qkv writes to
   disk. */
uint32_t qkv_crc32c(uint32_t crc, const void *data, size_t len);

/* Mixes a 64-bit value (splitmix64 finaliser). */
uint64_t qkv_hash_mix(uint64_t x);

/* The next value of a xorshift64 generator (fast, not for secrets) whose
   state *state is non-zero; the state moves on. Seeded runs repeat. */
uint64_t qkv_xorshift64(uint64_t *state);

/* 64 random bits from the kernel (getrandom), for seeds, secrets and
   ids; retries until it has them (it may wait for entropy at boot). */
uint64_t qkv_random64(void);

/* Backward-shift deletion for a linear-probing table of uint32 values (0 =
   empty) with mask + 1 slots: empties slot hole and moves later members of
   its run back so that every lookup still finds them. home(ctx, value)
   is the slot a value hashes to (before masking). */
void qkv_probe_unlink(uint32_t *table, size_t mask, size_t hole,
                      size_t (*home)(const void *ctx, uint32_t value),
                      const void *ctx);

/* The same for a table of uint64 values (0 = empty). */
void qkv_probe_unlink64(uint64_t *table, size_t mask, size_t hole,
                        size_t (*home)(const void *ctx, uint64_t value),
                        const void *ctx);

/* Grows such a table to slots (a power of two, above the values held):
   allocates the new one, moves every value to its place, frees the old
   one, and sets *table and *mask. *table may be NULL (nothing held yet).
   Returns 0, or -1 when out of memory (nothing changed). */
int qkv_probe_grow(uint32_t **table, size_t *mask, size_t slots,
                   size_t (*home)(const void *ctx, uint32_t value),
                   const void *ctx);
int qkv_probe_grow64(uint64_t **table, size_t *mask, size_t slots,
                     size_t (*home)(const void *ctx, uint64_t value),
                     const void *ctx);

#endif
