/*  qkv_entry.c - log entries and their content hash (qkv_entry.h).
 */
#include "qkv_entry.h"
#include "qkv_hash.h"

#include <stdlib.h>
#include <string.h>

qkv_entry_t *qkv_entry_new(qkv_op_t op, const void *key, size_t key_len,
                           const void *value, size_t value_len) {
    if (key_len > UINT32_MAX || value_len > UINT32_MAX)
        return NULL;
    qkv_entry_t *self = malloc(sizeof(*self) + key_len + value_len);
    if (!self)
        return NULL;
    memset(self, 0, sizeof(*self));
    self->key_len = (uint32_t)key_len;
    self->value_len = (uint32_t)value_len;
    self->op = (uint8_t)op;
    if (key_len)
        memcpy(self->data, key, key_len);
    if (value_len)
        memcpy(self->data + key_len, value, value_len);
    return self;
}

uint64_t qkv_write_hash(qkv_op_t op, const void *key, size_t key_len,
                        const void *value, size_t value_len) {
    /* op and the key's length first, so ("ab", "c") and ("a", "bc")
       differ */
    uint8_t head[9] = {(uint8_t)op};
    uint64_t len = key_len;
    for (int i = 0; i < 8; i++)
        head[1 + i] = (uint8_t)(len >> (8 * i));
    uint64_t h = qkv_hash_bytes(QKV_HASH_SEED, head, sizeof(head));
    h = qkv_hash_bytes(h, key, key_len);
    return qkv_hash_bytes(h, value, value_len);
}

uint64_t qkv_entry_hash(const qkv_entry_t *entry) {
    return qkv_write_hash((qkv_op_t)entry->op, entry->data, entry->key_len,
                          entry->data + entry->key_len, entry->value_len);
}
