/*  test_log.c - the in-memory replicated log (node/include/qkv_log.h).

    Numbering from 1 without gaps, ownership on append, get in and out of
    range, first/last, forgetting a prefix (never past last), terms at and
    just before the first entry held, truncating a suffix, clear, and a
    large log.
*/
#include "kit.h"
#include "qkv_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qkv_entry_t *make(const char *key, const char *value) {
    qkv_entry_t *e =
        qkv_entry_new(QKV_OP_PUT, key, strlen(key), value, strlen(value));
    CU_ASSERT_FATAL(e != NULL);
    e->term = 3;
    return e;
}

/* Appends key=value and checks the index it gets. */
static void append_expect(qkv_log_t *log, const char *key, uint64_t index) {
    qkv_entry_t *e = make(key, "value");
    qkv_entry_t *held = e;
    CU_ASSERT(qkv_log_append(log, &e) == index);
    CU_ASSERT(e == NULL);
    CU_ASSERT(held->index == index);
}

static void test_empty(void) {
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    CU_ASSERT(qkv_log_last_index(log) == 0);
    CU_ASSERT(qkv_log_first_index(log) == 1);
    CU_ASSERT(qkv_log_get(log, 0) == NULL);
    CU_ASSERT(qkv_log_get(log, 1) == NULL);
    CU_ASSERT(qkv_log_get(log, UINT64_MAX) == NULL);
    qkv_log_forget(log, 5); /* nothing to forget */
    CU_ASSERT(qkv_log_last_index(log) == 0);
    CU_ASSERT(qkv_log_first_index(log) == 1);
    qkv_log_destroy(&log);
    CU_ASSERT(log == NULL);
    qkv_log_destroy(&log);
}

static void test_append_and_get(void) {
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    append_expect(log, "a", 1);
    append_expect(log, "bb", 2);
    append_expect(log, "ccc", 3);
    CU_ASSERT(qkv_log_first_index(log) == 1);
    CU_ASSERT(qkv_log_last_index(log) == 3);
    const char *keys[] = {"a", "bb", "ccc"};
    for (uint64_t i = 1; i <= 3; i++) {
        const qkv_entry_t *e = qkv_log_get(log, i);
        CU_ASSERT_FATAL(e != NULL);
        CU_ASSERT(e->index == i);
        CU_ASSERT(e->term == 3);
        CU_ASSERT_EQUAL(e->key_len, strlen(keys[i - 1]));
        CU_ASSERT(memcmp(e->data, keys[i - 1], e->key_len) == 0);
        CU_ASSERT(memcmp(e->data + e->key_len, "value", 5) == 0);
    }
    CU_ASSERT(qkv_log_get(log, 0) == NULL);
    CU_ASSERT(qkv_log_get(log, 4) == NULL);
    CU_ASSERT(qkv_log_get(log, UINT64_MAX) == NULL);
    qkv_log_destroy(&log);
}

static void test_forget_prefix(void) {
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    for (uint64_t i = 1; i <= 5; i++)
        append_expect(log, "k", i);
    qkv_log_forget(log, 2);
    CU_ASSERT(qkv_log_first_index(log) == 3);
    CU_ASSERT(qkv_log_last_index(log) == 5);
    CU_ASSERT(qkv_log_get(log, 1) == NULL);
    CU_ASSERT(qkv_log_get(log, 2) == NULL);
    CU_ASSERT_FATAL(qkv_log_get(log, 3) != NULL);
    CU_ASSERT(qkv_log_get(log, 3)->index == 3);
    /* Forgetting less than what is already gone changes nothing. */
    qkv_log_forget(log, 1);
    qkv_log_forget(log, 0);
    CU_ASSERT(qkv_log_first_index(log) == 3);
    append_expect(log, "k", 6);
    CU_ASSERT(qkv_log_get(log, 6) != NULL);
    /* Forgetting past last stops at last; numbering goes on. */
    qkv_log_forget(log, 100);
    CU_ASSERT(qkv_log_last_index(log) == 6);
    CU_ASSERT(qkv_log_first_index(log) == 7);
    CU_ASSERT(qkv_log_get(log, 6) == NULL);
    CU_ASSERT(qkv_log_get(log, 7) == NULL);
    append_expect(log, "k", 7);
    CU_ASSERT(qkv_log_first_index(log) == 7);
    CU_ASSERT(qkv_log_last_index(log) == 7);
    CU_ASSERT(qkv_log_get(log, 7) != NULL);
    qkv_log_destroy(&log);
}

/* Appends an entry of term at index. */
static void append_term(qkv_log_t *log, uint64_t term, uint64_t index) {
    qkv_entry_t *e = make("k", "v");
    e->term = term;
    CU_ASSERT(qkv_log_append(log, &e) == index);
}

static void test_terms_and_truncate(void) {
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    CU_ASSERT(qkv_log_term_at(log, 0) == 0);
    CU_ASSERT(qkv_log_term_at(log, 1) == QKV_TERM_UNKNOWN);
    const uint64_t terms[] = {1, 1, 2, 2, 2, 5};
    for (uint64_t i = 1; i <= 6; i++)
        append_term(log, terms[i - 1], i);
    for (uint64_t i = 1; i <= 6; i++)
        CU_ASSERT(qkv_log_term_at(log, i) == terms[i - 1]);
    CU_ASSERT(qkv_log_term_at(log, 7) == QKV_TERM_UNKNOWN);
    /* dropping a prefix keeps the term just before the first held */
    qkv_log_forget(log, 3);
    CU_ASSERT(qkv_log_term_at(log, 3) == 2);
    CU_ASSERT(qkv_log_term_at(log, 2) == QKV_TERM_UNKNOWN);
    CU_ASSERT(qkv_log_term_at(log, 0) == 0);
    /* truncating a suffix: the log ends before index */
    qkv_log_truncate(log, 5);
    CU_ASSERT(qkv_log_last_index(log) == 4);
    CU_ASSERT(qkv_log_get(log, 5) == NULL);
    CU_ASSERT(qkv_log_term_at(log, 5) == QKV_TERM_UNKNOWN);
    append_term(log, 7, 5);
    CU_ASSERT(qkv_log_term_at(log, 5) == 7);
    /* truncating at or below the first held empties what is held */
    qkv_log_truncate(log, 2);
    CU_ASSERT(qkv_log_last_index(log) == 3);
    CU_ASSERT(qkv_log_first_index(log) == 4);
    CU_ASSERT(qkv_log_term_at(log, 3) == 2);
    append_term(log, 8, 4);
    CU_ASSERT(qkv_log_term_at(log, 4) == 8);
    qkv_log_forget(log, 4);
    CU_ASSERT(qkv_log_last_index(log) == 4);
    CU_ASSERT(qkv_log_term_at(log, 4) == 8);
    qkv_log_clear(log);
    CU_ASSERT(qkv_log_term_at(log, 0) == 0);
    CU_ASSERT(qkv_log_term_at(log, 4) == QKV_TERM_UNKNOWN);
    qkv_log_destroy(&log);
}

static void test_clear(void) {
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    for (uint64_t i = 1; i <= 10; i++)
        append_expect(log, "k", i);
    qkv_log_forget(log, 4);
    qkv_log_clear(log);
    CU_ASSERT(qkv_log_last_index(log) == 0);
    CU_ASSERT(qkv_log_first_index(log) == 1);
    CU_ASSERT(qkv_log_get(log, 5) == NULL);
    append_expect(log, "again", 1);
    CU_ASSERT(qkv_log_get(log, 1) != NULL);
    qkv_log_clear(log);
    qkv_log_clear(log);
    CU_ASSERT(qkv_log_last_index(log) == 0);
    qkv_log_destroy(&log);
}

static void test_large(void) {
    enum { N = 200000 };
    qkv_log_t *log = qkv_log_new();
    CU_ASSERT_FATAL(log != NULL);
    char key[32];
    int wrong = 0;
    for (uint64_t i = 1; i <= N; i++) {
        snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
        qkv_entry_t *e = make(key, "v");
        wrong += qkv_log_append(log, &e) != i;
        free(e); /* NULL unless the append failed */
    }
    CU_ASSERT_EQUAL(wrong, 0);
    kit_rng_t rng;
    kit_rng_seed(&rng, 5);
    for (int probe = 0; probe < 10000; probe++) {
        uint64_t i = 1 + kit_rng_below(&rng, N);
        const qkv_entry_t *e = qkv_log_get(log, i);
        int len = snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
        if (!e || e->index != i || e->key_len != (uint32_t)len ||
            memcmp(e->data, key, (size_t)len) != 0)
            wrong++;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    qkv_log_forget(log, N / 2);
    CU_ASSERT(qkv_log_first_index(log) == N / 2 + 1);
    CU_ASSERT(qkv_log_get(log, N / 2) == NULL);
    CU_ASSERT(qkv_log_get(log, N / 2 + 1) != NULL);
    CU_ASSERT(qkv_log_get(log, N) != NULL);
    append_expect(log, "after", N + 1);
    qkv_log_destroy(&log);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {KIT_TEST(test_empty),
                                       KIT_TEST(test_append_and_get),
                                       KIT_TEST(test_forget_prefix),
                                       KIT_TEST(test_terms_and_truncate),
                                       KIT_TEST(test_clear),
                                       KIT_TEST(test_large),
                                       KIT_TESTS_END};
    return kit_add_suite("log", NULL, NULL, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
