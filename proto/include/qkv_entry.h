/*  qkv_entry.h - one entry of the replicated log, as every part holds it.

    An entry is one allocation: a header, then the key bytes, then the
    value bytes. The leader fills index, term and time when it logs the
    entry; client_id and client_seq name the writer for sessions (0 and 0:
    an untagged write). Nothing here knows msgpack.
*/
#ifndef QKV_ENTRY_H
#define QKV_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Log entry operations. */
typedef enum {
    QKV_OP_PUT = 1,    /* set key to value */
    QKV_OP_DELETE = 2, /* remove key (value empty) */
    QKV_OP_RESET = 3,  /* empty every key (key and value empty); sessions
                          stay */
    QKV_OP_NOOP = 4    /* changes nothing: the entry a leader logs when its
                          term starts (key and value empty) */
} qkv_op_t;
#define QKV_OP_MAX QKV_OP_NOOP

/* Largest client_id and client_seq: 2^53 - 1, the largest integer every
   JSON parser reads exactly, so REST and zmq-native clients share them. */
#define QKV_CLIENT_ID_MAX ((1ULL << 53) - 1)

typedef struct {
    uint64_t index;      /* place in the log, from 1; 0 until logged */
    uint64_t term;       /* term of the leader that logged it */
    uint64_t client_id;  /* writer's session, 0 = untagged */
    uint64_t client_seq; /* writer's number for this write, 0 = untagged */
    uint64_t time_ms;    /* leader's wall clock when logged, never below the
                            entry before: the log time sessions expire by */
    uint32_t key_len;    /* bytes of key at data[0] */
    uint32_t value_len;  /* bytes of value at data[key_len] */
    uint8_t op;          /* qkv_op_t */
    char data[];         /* key bytes, then value bytes */
} qkv_entry_t;

/* Allocates an entry holding copies of key and value, every number 0.
   Returns NULL when out of memory or a length exceeds 32 bits. Free with
   free(). */
qkv_entry_t *qkv_entry_new(qkv_op_t op, const void *key, size_t key_len,
                           const void *value, size_t value_len);

/* The content hash sessions keep for a write: the same op, key and value
   give the same hash on every node and in every build. */
uint64_t qkv_write_hash(qkv_op_t op, const void *key, size_t key_len,
                        const void *value, size_t value_len);

/* qkv_write_hash of an entry's op, key and value. */
uint64_t qkv_entry_hash(const qkv_entry_t *entry);

#ifdef __cplusplus
}
#endif
#endif
