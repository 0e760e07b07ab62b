/*  test_store.c - the key-value store (node/include/qkv_store.h).

    Applying PUT, DELETE and RESET entries (seq and index), clear, count,
    applied_index, binary keys, large values, growth to 100k keys, dump
    cursors (each key at most once, also while the store changes between
    calls; untouched keys always visited), and readers running beside the
    writer.
*/
#include "kit.h"
#include "qkv_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qkv_store_t *s_store;
static uint64_t s_index; /* index of the last entry applied by apply() */

/*  ---------------------------------------------------------------------
    Helpers */

static int apply_at(qkv_store_t *store, qkv_op_t op, uint64_t index,
                    const char *key, size_t key_len, const char *value,
                    size_t value_len, uint64_t *seq) {
    qkv_entry_t *e = qkv_entry_new(op, key, key_len, value, value_len);
    CU_ASSERT_FATAL(e != NULL);
    e->index = index;
    int rc = qkv_store_apply(store, e, seq);
    free(e);
    return rc;
}

/* Applies to s_store at the next index; returns the new seq. */
static uint64_t apply(qkv_op_t op, const char *key, size_t key_len,
                      const char *value, size_t value_len) {
    uint64_t seq = 999;
    s_index++;
    CU_ASSERT_EQUAL_FATAL(
        apply_at(s_store, op, s_index, key, key_len, value, value_len, &seq),
        0);
    return seq;
}

static uint64_t put(const char *key, const char *value) {
    return apply(QKV_OP_PUT, key, strlen(key), value, strlen(value));
}

/* Expects key to hold value with seq and index. */
static void expect(const char *key, size_t key_len, const char *value,
                   size_t value_len, uint64_t seq, uint64_t index) {
    qkv_buf_t buf = {0};
    uint64_t got_seq = 0, got_index = 0;
    int rc = qkv_store_get(s_store, key, key_len, &buf, &got_seq, &got_index);
    CU_ASSERT_EQUAL(rc, 1);
    if (rc == 1) {
        CU_ASSERT_EQUAL(buf.size, value_len);
        CU_ASSERT(buf.size != value_len ||
                  (value_len == 0 || memcmp(buf.data, value, value_len) == 0));
        CU_ASSERT(got_seq == seq);
        CU_ASSERT(got_index == index);
    }
    qkv_buf_free(&buf);
}

static void expect_absent(const char *key, size_t key_len) {
    qkv_buf_t buf = {0};
    uint64_t seq = 0, index = 0;
    CU_ASSERT_EQUAL(qkv_store_get(s_store, key, key_len, &buf, &seq, &index),
                    0);
    qkv_buf_free(&buf);
}

static int s_setup(void) {
    s_store = qkv_store_new();
    s_index = 0;
    return s_store ? 0 : -1;
}

static int s_teardown(void) {
    qkv_store_destroy(&s_store);
    return s_store == NULL ? 0 : -1;
}

/* Each test gets a fresh store. */
static void fresh(void) {
    qkv_store_destroy(&s_store);
    s_store = qkv_store_new();
    s_index = 0;
    CU_ASSERT_FATAL(s_store != NULL);
}

/*  ---------------------------------------------------------------------
    Basics */

static void test_empty(void) {
    fresh();
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 0);
    CU_ASSERT(qkv_store_applied_index(s_store) == 0);
    expect_absent("k", 1);
    expect_absent("", 0);
    qkv_store_t *other = qkv_store_new();
    CU_ASSERT_FATAL(other != NULL);
    qkv_store_destroy(&other);
    CU_ASSERT(other == NULL);
    qkv_store_destroy(&other); /* safe on NULL */
}

static void test_put_get_seq(void) {
    fresh();
    CU_ASSERT(put("alpha", "one") == 1);
    expect("alpha", 5, "one", 3, 1, 1);
    CU_ASSERT(qkv_store_applied_index(s_store) == 1);
    CU_ASSERT(put("alpha", "two!") == 2);
    expect("alpha", 5, "two!", 4, 2, 2);
    CU_ASSERT(put("beta", "b") == 1);
    expect("beta", 4, "b", 1, 1, 3);
    CU_ASSERT(put("alpha", "") == 3);
    expect("alpha", 5, "", 0, 3, 4);
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 2);
    CU_ASSERT(qkv_store_applied_index(s_store) == 4);
    expect_absent("alph", 4);
    expect_absent("alphaa", 6);
}

static void test_index_is_the_entry(void) {
    fresh();
    uint64_t seq = 0;
    /* Indices need not be consecutive for the store. */
    CU_ASSERT_EQUAL(apply_at(s_store, QKV_OP_PUT, 10, "k", 1, "v", 1, &seq), 0);
    CU_ASSERT(seq == 1);
    CU_ASSERT_EQUAL(apply_at(s_store, QKV_OP_PUT, 25, "j", 1, "w", 1, &seq), 0);
    expect("k", 1, "v", 1, 1, 10);
    expect("j", 1, "w", 1, 1, 25);
    CU_ASSERT(qkv_store_applied_index(s_store) == 25);
}

static void test_get_replaces_buffer(void) {
    fresh();
    put("k", "short");
    qkv_buf_t buf = {0};
    CU_ASSERT_EQUAL(qkv_buf_append(&buf, "previous content", 16), 0);
    uint64_t seq, index;
    CU_ASSERT_EQUAL(qkv_store_get(s_store, "k", 1, &buf, &seq, &index), 1);
    CU_ASSERT_EQUAL(buf.size, 5);
    CU_ASSERT_FATAL(buf.data != NULL);
    CU_ASSERT(memcmp(buf.data, "short", 5) == 0);
    CU_ASSERT_EQUAL(buf.data[5], '\0');
    qkv_buf_free(&buf);
}

static void test_delete(void) {
    fresh();
    put("k", "v1");
    put("k", "v2");
    put("other", "o");
    /* DELETE reports 1 when it removed a key, 0 when there was none */
    CU_ASSERT(apply(QKV_OP_DELETE, "k", 1, "", 0) == 1);
    expect_absent("k", 1);
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 1);
    CU_ASSERT(qkv_store_applied_index(s_store) == 4);
    /* A later put starts again at seq 1. */
    CU_ASSERT(put("k", "v3") == 1);
    expect("k", 1, "v3", 2, 1, 5);
    /* Deleting a missing key changes nothing but applied_index. */
    CU_ASSERT(apply(QKV_OP_DELETE, "missing", 7, "", 0) == 0);
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 2);
    CU_ASSERT(qkv_store_applied_index(s_store) == 6);
    expect("other", 5, "o", 1, 1, 3);
}

static void test_reset(void) {
    fresh();
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "key%d", i);
        put(key, "x");
        put(key, "y");
    }
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 100);
    CU_ASSERT(apply(QKV_OP_RESET, "", 0, "", 0) == 0);
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 0);
    CU_ASSERT(qkv_store_applied_index(s_store) == 201);
    expect_absent("key7", 4);
    CU_ASSERT(put("key7", "z") == 1);
    expect("key7", 4, "z", 1, 1, 202);
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 1);
}

static void test_clear(void) {
    fresh();
    put("a", "1");
    put("b", "2");
    qkv_store_clear(s_store);
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 0);
    CU_ASSERT(qkv_store_applied_index(s_store) == 0);
    expect_absent("a", 1);
    s_index = 0;
    CU_ASSERT(put("a", "3") == 1);
    expect("a", 1, "3", 1, 1, 1);
    qkv_store_clear(s_store);
    qkv_store_clear(s_store);
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 0);
}

static void test_binary_keys(void) {
    fresh();
    CU_ASSERT(apply(QKV_OP_PUT, "a\0b", 3, "v\0one", 5) == 1);
    CU_ASSERT(apply(QKV_OP_PUT, "a\0c", 3, "two", 3) == 1);
    CU_ASSERT(apply(QKV_OP_PUT, "a", 1, "three", 5) == 1);
    CU_ASSERT(apply(QKV_OP_PUT, "\0", 1, "\0", 1) == 1);
    CU_ASSERT(apply(QKV_OP_PUT, "\0\0", 2, "", 0) == 1);
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 5);
    expect("a\0b", 3, "v\0one", 5, 1, 1);
    expect("a\0c", 3, "two", 3, 1, 2);
    expect("a", 1, "three", 5, 1, 3);
    expect("\0", 1, "\0", 1, 1, 4);
    expect("\0\0", 2, "", 0, 1, 5);
    expect_absent("a\0", 2);
    CU_ASSERT(apply(QKV_OP_PUT, "a\0b", 3, "\xff", 1) == 2);
    expect("a\0b", 3, "\xff", 1, 2, 6);
}

static void test_large_values(void) {
    fresh();
    size_t big = 4 * 1024 * 1024;
    char *value = malloc(big);
    CU_ASSERT_FATAL(value != NULL);
    for (size_t i = 0; i < big; i++)
        value[i] = (char)(i * 31 + 7);
    const size_t sizes[] = {big, 10, big / 2, 0, big};
    for (size_t i = 0; i < 5; i++) {
        CU_ASSERT(apply(QKV_OP_PUT, "big", 3, value, sizes[i]) == i + 1);
        expect("big", 3, value, sizes[i], i + 1, s_index);
    }
    free(value);
}

/*  ---------------------------------------------------------------------
    Many keys */

static void test_many_keys(void) {
    enum { N = 100000 };
    fresh();
    char key[32], value[32];
    for (int i = 0; i < N; i++) {
        int klen = snprintf(key, sizeof key, "key-%d", i);
        int vlen = snprintf(value, sizeof value, "value-%d", i * 7);
        if (apply(QKV_OP_PUT, key, (size_t)klen, value, (size_t)vlen) != 1)
            CU_FAIL_FATAL("seq of a new key is not 1");
    }
    CU_ASSERT_EQUAL(qkv_store_count(s_store), N);
    CU_ASSERT(qkv_store_applied_index(s_store) == N);
    int wrong = 0;
    qkv_buf_t buf = {0};
    for (int i = 0; i < N; i++) {
        int klen = snprintf(key, sizeof key, "key-%d", i);
        int vlen = snprintf(value, sizeof value, "value-%d", i * 7);
        uint64_t seq = 0, index = 0;
        int rc = qkv_store_get(s_store, key, (size_t)klen, &buf, &seq, &index);
        if (rc != 1 || buf.size != (size_t)vlen ||
            memcmp(buf.data, value, (size_t)vlen) != 0 || seq != 1 ||
            index != (uint64_t)i + 1)
            wrong++;
    }
    qkv_buf_free(&buf);
    CU_ASSERT_EQUAL(wrong, 0);
    size_t overhead = qkv_store_overhead_bytes(s_store);
    CU_ASSERT(overhead > 0);
    CU_ASSERT(overhead < (size_t)N * 512);
    /* Delete every other key: count follows, the rest stay. */
    for (int i = 0; i < N; i += 2) {
        int klen = snprintf(key, sizeof key, "key-%d", i);
        apply(QKV_OP_DELETE, key, (size_t)klen, "", 0);
    }
    CU_ASSERT_EQUAL(qkv_store_count(s_store), N / 2);
    expect_absent("key-0", 5);
    expect("key-1", 5, "value-7", 7, 1, 2);
    expect("key-99999", 9, "value-699993", 12, 1, 100000);
}

/*  ---------------------------------------------------------------------
    Cursors */

#define CURSOR_KEYS 2000

typedef struct {
    unsigned visits[CURSOR_KEYS * 2]; /* per key number */
    size_t total;
    int bad; /* visits whose fields do not match the key */
} visits_t;

/* Keys are "c<number>" with value "v<number>-<seq>". */
static void s_visit(void *arg, const char *key, size_t key_len,
                    const char *value, size_t value_len, uint64_t seq,
                    uint64_t index) {
    visits_t *v = arg;
    char text[32];
    v->total++;
    if (key_len < 2 || key_len >= sizeof text || key[0] != 'c') {
        v->bad++;
        return;
    }
    memcpy(text, key + 1, key_len - 1);
    text[key_len - 1] = '\0';
    long n = strtol(text, NULL, 10);
    if (n < 0 || n >= CURSOR_KEYS * 2) {
        v->bad++;
        return;
    }
    v->visits[n]++;
    int len =
        snprintf(text, sizeof text, "v%ld-%llu", n, (unsigned long long)seq);
    if ((size_t)len != value_len || memcmp(text, value, value_len) != 0 ||
        index == 0)
        v->bad++;
}

static void put_numbered(long n, uint64_t expected_seq) {
    char key[32], value[32];
    int klen = snprintf(key, sizeof key, "c%ld", n);
    int vlen = snprintf(value, sizeof value, "v%ld-%llu", n,
                        (unsigned long long)expected_seq);
    uint64_t seq = apply(QKV_OP_PUT, key, (size_t)klen, value, (size_t)vlen);
    CU_ASSERT(seq == expected_seq);
}

static void delete_numbered(long n) {
    char key[32];
    int klen = snprintf(key, sizeof key, "c%ld", n);
    apply(QKV_OP_DELETE, key, (size_t)klen, "", 0);
}

static void test_cursor_visits_all(void) {
    fresh();
    for (long i = 0; i < CURSOR_KEYS; i++)
        put_numbered(i, 1);
    uint64_t applied = 0;
    size_t count = 0;
    qkv_store_cursor_t *cursor =
        qkv_store_cursor_new(s_store, &applied, &count);
    CU_ASSERT_FATAL(cursor != NULL);
    CU_ASSERT(applied == CURSOR_KEYS);
    CU_ASSERT_EQUAL(count, CURSOR_KEYS);
    static visits_t v;
    memset(&v, 0, sizeof v);
    size_t n, calls = 0;
    while ((n = qkv_store_cursor_next(cursor, 7, s_visit, &v)) > 0) {
        CU_ASSERT(n <= 7);
        calls++;
    }
    CU_ASSERT_EQUAL(qkv_store_cursor_next(cursor, 7, s_visit, &v), 0);
    qkv_store_cursor_destroy(&cursor);
    CU_ASSERT(cursor == NULL);
    qkv_store_cursor_destroy(&cursor);
    CU_ASSERT_EQUAL(v.total, CURSOR_KEYS);
    CU_ASSERT_EQUAL(v.bad, 0);
    CU_ASSERT(calls >= CURSOR_KEYS / 7);
    for (long i = 0; i < CURSOR_KEYS; i++)
        CU_ASSERT_EQUAL(v.visits[i], 1);
}

static void test_cursor_empty_store(void) {
    fresh();
    uint64_t applied = 99;
    size_t count = 99;
    qkv_store_cursor_t *cursor =
        qkv_store_cursor_new(s_store, &applied, &count);
    CU_ASSERT_FATAL(cursor != NULL);
    CU_ASSERT(applied == 0);
    CU_ASSERT_EQUAL(count, 0);
    visits_t *v = calloc(1, sizeof *v);
    CU_ASSERT_FATAL(v != NULL);
    CU_ASSERT_EQUAL(qkv_store_cursor_next(cursor, 100, s_visit, v), 0);
    CU_ASSERT_EQUAL(v->total, 0);
    free(v);
    qkv_store_cursor_destroy(&cursor);
}

/* Changes the store between cursor calls: updates, deletes, new keys (so
   the table must grow while the cursor is open). Keys below `untouched`
   are never written during the dump and must each be visited once. */
static void test_cursor_while_changing(void) {
    fresh();
    const long untouched = 500;
    uint64_t seqs[CURSOR_KEYS * 2] = {0};
    for (long i = 0; i < CURSOR_KEYS; i++)
        put_numbered(i, seqs[i] = 1);
    uint64_t applied;
    size_t count;
    qkv_store_cursor_t *cursor =
        qkv_store_cursor_new(s_store, &applied, &count);
    CU_ASSERT_FATAL(cursor != NULL);
    static visits_t v;
    memset(&v, 0, sizeof v);
    long next_new = CURSOR_KEYS;
    kit_rng_t rng;
    kit_rng_seed(&rng, 99);
    while (qkv_store_cursor_next(cursor, 5, s_visit, &v) > 0) {
        for (int k = 0; k < 3; k++) {
            long n =
                untouched + (long)kit_rng_below(&rng, CURSOR_KEYS - untouched);
            if (kit_rng_below(&rng, 4) == 0 && seqs[n]) {
                delete_numbered(n);
                seqs[n] = 0;
            } else {
                put_numbered(n, ++seqs[n]);
            }
        }
        if (next_new < CURSOR_KEYS * 2)
            put_numbered(next_new, seqs[next_new] = 1), next_new++;
    }
    qkv_store_cursor_destroy(&cursor);
    CU_ASSERT_EQUAL(v.bad, 0);
    int twice = 0, missed = 0;
    for (long i = 0; i < CURSOR_KEYS * 2; i++)
        twice += v.visits[i] > 1;
    for (long i = 0; i < untouched; i++)
        missed += v.visits[i] == 0;
    CU_ASSERT_EQUAL(twice, 0);
    CU_ASSERT_EQUAL(missed, 0);
    /* The store is still whole after the dump. */
    size_t live = 0;
    for (long i = 0; i < CURSOR_KEYS * 2; i++)
        live += seqs[i] != 0;
    CU_ASSERT_EQUAL(qkv_store_count(s_store), live);
}

static void test_cursor_reset_during(void) {
    fresh();
    for (long i = 0; i < CURSOR_KEYS; i++)
        put_numbered(i, 1);
    uint64_t applied;
    size_t count;
    qkv_store_cursor_t *cursor =
        qkv_store_cursor_new(s_store, &applied, &count);
    CU_ASSERT_FATAL(cursor != NULL);
    static visits_t v;
    memset(&v, 0, sizeof v);
    CU_ASSERT(qkv_store_cursor_next(cursor, 10, s_visit, &v) > 0);
    apply(QKV_OP_RESET, "", 0, "", 0);
    for (long i = 0; i < 50; i++)
        put_numbered(i, 1);
    while (qkv_store_cursor_next(cursor, 10, s_visit, &v) > 0)
        ;
    qkv_store_cursor_destroy(&cursor);
    CU_ASSERT_EQUAL(v.bad, 0);
    for (long i = 0; i < CURSOR_KEYS; i++)
        CU_ASSERT(v.visits[i] <= 1);
    CU_ASSERT_EQUAL(qkv_store_count(s_store), 50);
    /* A second, clean dump sees exactly the 50 keys. */
    memset(&v, 0, sizeof v);
    cursor = qkv_store_cursor_new(s_store, &applied, &count);
    CU_ASSERT_FATAL(cursor != NULL);
    while (qkv_store_cursor_next(cursor, 1000, s_visit, &v) > 0)
        ;
    qkv_store_cursor_destroy(&cursor);
    CU_ASSERT_EQUAL(v.total, 50);
    CU_ASSERT_EQUAL(count, 50);
}

/*  ---------------------------------------------------------------------
    Stateless scans */

/* Scans the whole store in calls of max_keys / max_bytes; fails the test
   when a call visits more than max_keys or the walk does not end. */
static size_t scan_all(size_t max_keys, size_t max_bytes, visits_t *v,
                       void (*between)(void)) {
    uint64_t cursor = 0;
    size_t calls = 0;
    do {
        size_t n =
            qkv_store_scan(s_store, &cursor, max_keys, max_bytes, s_visit, v);
        CU_ASSERT(n <= max_keys);
        if (++calls > 100000)
            CU_FAIL_FATAL("the scan does not end");
        if (between)
            between();
    } while (cursor != 0);
    return calls;
}

static void test_scan_empty(void) {
    fresh();
    uint64_t cursor = 0;
    visits_t *v = calloc(1, sizeof *v);
    CU_ASSERT_FATAL(v != NULL);
    CU_ASSERT_EQUAL(qkv_store_scan(s_store, &cursor, 10, 1000, s_visit, v), 0);
    CU_ASSERT(cursor == 0);
    CU_ASSERT_EQUAL(v->total, 0);
    free(v);
}

static void test_scan_visits_all(void) {
    fresh();
    for (long i = 0; i < CURSOR_KEYS; i++)
        put_numbered(i, 1);
    static visits_t v;
    memset(&v, 0, sizeof v);
    size_t calls = scan_all(7, SIZE_MAX, &v, NULL);
    CU_ASSERT_EQUAL(v.bad, 0);
    CU_ASSERT_EQUAL(v.total, CURSOR_KEYS);
    CU_ASSERT(calls >= CURSOR_KEYS / 7);
    int wrong = 0;
    for (long i = 0; i < CURSOR_KEYS; i++)
        wrong += v.visits[i] != 1;
    CU_ASSERT_EQUAL(wrong, 0);
}

/* Keys "c<n>" with values "v<n>-1" padded with '-' to 100 bytes are not
   what s_visit checks; count the visits by hand. */
typedef struct {
    size_t keys, bytes, max_in_call, calls_over;
    size_t in_call, bytes_in_call, max_bytes;
} sized_t;

static void s_visit_sized(void *arg, const char *key, size_t key_len,
                          const char *value, size_t value_len, uint64_t seq,
                          uint64_t index) {
    sized_t *z = arg;
    (void)key, (void)value, (void)seq, (void)index;
    /* The bytes before this key must still have been under the limit. */
    if (z->bytes_in_call >= z->max_bytes)
        z->calls_over++;
    z->keys++;
    z->in_call++;
    z->bytes_in_call += key_len + value_len;
}

static void test_scan_byte_limit(void) {
    fresh();
    char value[1000];
    memset(value, 'x', sizeof value);
    for (int i = 0; i < 300; i++) {
        char key[16];
        int len = snprintf(key, sizeof key, "k%03d", i);
        apply(QKV_OP_PUT, key, (size_t)len, value, i % 10 ? 100 : 1000);
    }
    sized_t z = {0};
    z.max_bytes = 250;
    uint64_t cursor = 0;
    size_t calls = 0;
    do {
        z.in_call = z.bytes_in_call = 0;
        size_t n =
            qkv_store_scan(s_store, &cursor, 1000, 250, s_visit_sized, &z);
        CU_ASSERT_EQUAL(n, z.in_call);
        CU_ASSERT(n >= 1 || cursor == 0); /* always progress */
        if (z.in_call > z.max_in_call)
            z.max_in_call = z.in_call;
        if (++calls > 10000)
            CU_FAIL_FATAL("the scan does not end");
    } while (cursor != 0);
    CU_ASSERT_EQUAL(z.keys, 300);
    CU_ASSERT_EQUAL(z.calls_over, 0);
    CU_ASSERT(z.max_in_call <= 3);
    CU_ASSERT(calls >= 100);
}

static long s_next_key;
static uint64_t s_scan_seqs[CURSOR_KEYS * 2];

/* Between scan calls: update some keys from 500 up, add a new one. */
static void s_change_some(void) {
    static kit_rng_t rng = {12345};
    for (int k = 0; k < 3; k++) {
        long n = 500 + (long)kit_rng_below(&rng, CURSOR_KEYS - 500);
        put_numbered(n, ++s_scan_seqs[n]);
    }
    if (s_next_key < CURSOR_KEYS * 2) {
        put_numbered(s_next_key, s_scan_seqs[s_next_key] = 1);
        s_next_key++;
    }
}

static void test_scan_while_changing(void) {
    fresh();
    for (long i = 0; i < CURSOR_KEYS; i++)
        put_numbered(i, s_scan_seqs[i] = 1);
    s_next_key = CURSOR_KEYS;
    static visits_t v;
    memset(&v, 0, sizeof v);
    scan_all(5, SIZE_MAX, &v, s_change_some);
    CU_ASSERT_EQUAL(v.bad, 0);
    /* Keys present throughout and never written: visited. */
    int missed = 0;
    for (long i = 0; i < 500; i++)
        missed += v.visits[i] == 0;
    CU_ASSERT_EQUAL(missed, 0);
}

/*  ---------------------------------------------------------------------
    Readers beside the writer */

#define RW_WRITES 20000

typedef struct {
    qkv_store_t *store;
    int done;            /* atomic: set when the writer is done */
    int bad;             /* atomic: reads whose value does not match */
    unsigned long reads; /* atomic: reads made */
} rw_t;

static void *s_reader(void *arg) {
    rw_t *rw = arg;
    qkv_buf_t buf = {0};
    char text[32];
    while (!__atomic_load_n(&rw->done, __ATOMIC_ACQUIRE)) {
        uint64_t seq, index;
        int rc = qkv_store_get(rw->store, "hot", 3, &buf, &seq, &index);
        __atomic_add_fetch(&rw->reads, 1, __ATOMIC_RELAXED);
        if (rc != 1)
            continue;
        int len =
            snprintf(text, sizeof text, "seq-%llu", (unsigned long long)seq);
        if (buf.size != (size_t)len || memcmp(buf.data, text, buf.size) ||
            index != seq)
            __atomic_add_fetch(&rw->bad, 1, __ATOMIC_RELAXED);
    }
    qkv_buf_free(&buf);
    return NULL;
}

static void test_concurrent_readers(void) {
    qkv_store_t *store = qkv_store_new();
    CU_ASSERT_FATAL(store != NULL);
    rw_t rw = {store, 0, 0, 0};
    pthread_t readers[3];
    for (int i = 0; i < 3; i++)
        CU_ASSERT_FATAL(pthread_create(&readers[i], NULL, s_reader, &rw) == 0);
    char value[32];
    int wrong_seq = 0;
    /* the writer goes on until the readers ran too: on a busy machine
       they may not be scheduled before 20 000 writes are done */
    for (uint64_t i = 1;
         i <= RW_WRITES || __atomic_load_n(&rw.reads, __ATOMIC_RELAXED) < 100;
         i++) {
        int len =
            snprintf(value, sizeof value, "seq-%llu", (unsigned long long)i);
        uint64_t seq = 0;
        apply_at(store, QKV_OP_PUT, i, "hot", 3, value, (size_t)len, &seq);
        wrong_seq += seq != i;
    }
    __atomic_store_n(&rw.done, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++)
        pthread_join(readers[i], NULL);
    CU_ASSERT_EQUAL(wrong_seq, 0);
    CU_ASSERT_EQUAL(rw.bad, 0);
    CU_ASSERT(rw.reads > 0);
    qkv_store_destroy(&store);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {KIT_TEST(test_empty),
                                       KIT_TEST(test_put_get_seq),
                                       KIT_TEST(test_index_is_the_entry),
                                       KIT_TEST(test_get_replaces_buffer),
                                       KIT_TEST(test_delete),
                                       KIT_TEST(test_reset),
                                       KIT_TEST(test_clear),
                                       KIT_TEST(test_binary_keys),
                                       KIT_TEST(test_large_values),
                                       KIT_TEST(test_many_keys),
                                       KIT_TEST(test_cursor_visits_all),
                                       KIT_TEST(test_cursor_empty_store),
                                       KIT_TEST(test_cursor_while_changing),
                                       KIT_TEST(test_cursor_reset_during),
                                       KIT_TEST(test_scan_empty),
                                       KIT_TEST(test_scan_visits_all),
                                       KIT_TEST(test_scan_byte_limit),
                                       KIT_TEST(test_scan_while_changing),
                                       KIT_TEST(test_concurrent_readers),
                                       KIT_TESTS_END};
    return kit_add_suite("store", s_setup, s_teardown, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
