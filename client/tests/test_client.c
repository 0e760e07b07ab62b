/*  test_client.c - libqkv against a real cluster of six nodes.

    Starts a leader and five followers (WRITE_QUORUM=2) with their client
    ports, and drives them through libqkv only: blocking calls, redirects
    from followers, read-your-writes on followers, 10 000 pipelined writes
    on one connection compared on every node afterwards, idempotent
    retries, timeouts and fallbacks. Keys carry a random per-run tag. The
    reset test, which empties the cluster, runs last.
*/
#include "ckit.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NODES 6
#define PIPELINED 10000

static kit_cluster_t s_cluster;
static char s_tag[9];
static char s_ep[NODES][64]; /* client endpoints, leader first */

static void key_of(char *key, size_t size, const char *name) {
    snprintf(key, size, "t%s-%s", s_tag, name);
}

static qkv_client_t *client_to(size_t node, int timeout_ms) {
    qkv_client_options_t options = {.timeout_ms = timeout_ms};
    return ckit_client(s_ep[node], &options);
}

/* Puts key = value through client and expects success. */
static void put_ok(qkv_client_t *client, const char *key, const char *value,
                   qkv_result_t *result) {
    int rc = qkv_put(client, key, strlen(key), value, strlen(value), result);
    if (rc != 0)
        fprintf(stderr, "\n  put %s: %s: %s\n", key, qkv_strerror(rc),
                qkv_client_errmsg(client));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

/* Gets key through client (min_index) and expects value and seq. */
static void get_expect(qkv_client_t *client, const char *key,
                       uint64_t min_index, const char *value, uint64_t seq,
                       uint64_t index) {
    qkv_result_t r;
    int rc = qkv_get(client, key, strlen(key), min_index, &r);
    if (rc != 0)
        fprintf(stderr, "\n  get %s at %s: %s: %s\n", key,
                qkv_client_endpoint(client), qkv_strerror(rc),
                qkv_client_errmsg(client));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_FATAL(r.value != NULL);
    KIT_ASSERT_STR(r.value, value);
    CU_ASSERT_EQUAL(r.value_len, strlen(value));
    CU_ASSERT_EQUAL(r.seq, seq);
    if (index)
        CU_ASSERT_EQUAL(r.index, index);
    free(r.value);
}

/*  ---------------------------------------------------------------------
    Suite setup */

static int s_init(void) {
    kit_random_tag(s_tag);
    if (ckit_cluster_start(&s_cluster, NODES - 1, 2) != 0)
        return -1;
    for (size_t i = 0; i < NODES; i++)
        ckit_endpoint(&s_cluster.nodes[i], s_ep[i], sizeof s_ep[i]);
    return 0;
}

static int s_cleanup(void) {
    return kit_cluster_stop(&s_cluster) == 0 ? 0 : -1;
}

/*  ---------------------------------------------------------------------
    Blocking calls */

static void test_put_get(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    char key[64];
    key_of(key, sizeof key, "pg");
    qkv_result_t r1, r2;
    put_ok(c, key, "v1", &r1);
    CU_ASSERT(r1.index > 0);
    CU_ASSERT_EQUAL(r1.seq, 1);
    CU_ASSERT(r1.value == NULL);
    get_expect(c, key, 0, "v1", 1, r1.index);
    put_ok(c, key, "v2", &r2);
    CU_ASSERT_EQUAL(r2.seq, 2);
    CU_ASSERT(r2.index > r1.index);
    get_expect(c, key, 0, "v2", 2, r2.index);

    /* A missing key */
    char missing[64];
    key_of(missing, sizeof missing, "never-written");
    qkv_result_t r;
    CU_ASSERT_EQUAL(qkv_get(c, missing, strlen(missing), 0, &r), QKV_ENOTFOUND);
    CU_ASSERT(r.value == NULL);

    /* Bytes, not strings: NULs inside key and value */
    char bkey[32] = "bin\0key", bval[8] = {'a', 0, 'b', 0, 'c'};
    size_t bkey_len = 7 + strlen(s_tag);
    memcpy(bkey + 7, s_tag, strlen(s_tag));
    CU_ASSERT_EQUAL(qkv_put(c, bkey, bkey_len, bval, 5, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(qkv_get(c, bkey, bkey_len, 0, &r), 0);
    CU_ASSERT_EQUAL(r.value_len, 5);
    CU_ASSERT(memcmp(r.value, bval, 5) == 0);
    CU_ASSERT_EQUAL(r.value[5], '\0');
    free(r.value);
    qkv_client_destroy(&c);
    CU_ASSERT(c == NULL);
    qkv_client_destroy(&c); /* twice is fine */
}

static void test_delete_restarts_seq(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    char key[64];
    key_of(key, sizeof key, "del");
    qkv_result_t r, d;
    put_ok(c, key, "a", &r);
    put_ok(c, key, "b", &r);
    CU_ASSERT_EQUAL(r.seq, 2);
    CU_ASSERT_EQUAL_FATAL(qkv_delete(c, key, strlen(key), &d), 0);
    CU_ASSERT(d.deleted);
    CU_ASSERT(d.index > r.index);
    CU_ASSERT_EQUAL(qkv_get(c, key, strlen(key), 0, NULL), QKV_ENOTFOUND);
    /* Deleting what is not there is a replicated entry too */
    qkv_result_t d2;
    CU_ASSERT_EQUAL_FATAL(qkv_delete(c, key, strlen(key), &d2), 0);
    CU_ASSERT(!d2.deleted);
    CU_ASSERT(d2.index > d.index);
    put_ok(c, key, "c", &r);
    CU_ASSERT_EQUAL(r.seq, 1);
    CU_ASSERT(r.index > d2.index);
    get_expect(c, key, 0, "c", 1, r.index);
    /* Followers see the deletion and the new value */
    qkv_client_t *f = client_to(NODES - 1, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(f != NULL);
    get_expect(f, key, r.index, "c", 1, r.index);
    qkv_client_destroy(&f);
    qkv_client_destroy(&c);
}

static void test_health(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    qkv_health_t h;
    CU_ASSERT_EQUAL_FATAL(qkv_health(c, &h), 0);
    KIT_ASSERT_STR(h.role, "leader");
    CU_ASSERT_EQUAL(h.follower_count, NODES - 1);
    CU_ASSERT(h.replication_id && *h.replication_id);
    CU_ASSERT(h.error && !*h.error);
    CU_ASSERT(h.commit_index <= h.last_index);
    for (size_t i = 0; i < h.follower_count; i++)
        CU_ASSERT(h.followers[i].endpoint && h.followers[i].id);
    char *repl_id = strdup(h.replication_id);
    qkv_health_clear(&h);
    CU_ASSERT(h.role == NULL);
    qkv_health_clear(&h); /* twice is fine */
    qkv_client_destroy(&c);

    for (size_t i = 1; i < NODES; i++) {
        qkv_client_t *f = client_to(i, CKIT_WAIT_MS);
        CU_ASSERT_FATAL(f != NULL);
        CU_ASSERT_EQUAL_FATAL(qkv_health(f, &h), 0);
        KIT_ASSERT_STR(h.role, "follower");
        CU_ASSERT_EQUAL(h.follower_count, 0);
        qkv_health_clear(&h);
        qkv_client_destroy(&f);
    }
    free(repl_id);
}

/* Waits until follower 1 knows the leader's client endpoint: a write
   through it then succeeds. */
typedef struct {
    qkv_client_t *client;
    const char *key;
    int rc;
} s_put_try_t;

static bool s_put_through(void *arg) {
    s_put_try_t *t = arg;
    t->rc =
        qkv_put(t->client, t->key, strlen(t->key), "via-follower", 12, NULL);
    return t->rc != QKV_ENOTLEADER;
}

static void test_not_leader_redirect(void) {
    char key[64];
    key_of(key, sizeof key, "redirect");
    qkv_client_t *f = client_to(1, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(f != NULL);
    KIT_ASSERT_STR(qkv_client_endpoint(f), s_ep[1]);
    s_put_try_t t = {f, key, 0};
    kit_poll_until(CKIT_WAIT_MS, s_put_through, &t);
    if (t.rc != 0)
        fprintf(stderr, "\n  put through a follower: %s: %s\n",
                qkv_strerror(t.rc), qkv_client_errmsg(f));
    CU_ASSERT_EQUAL_FATAL(t.rc, 0);
    /* The handle now talks to the leader */
    KIT_ASSERT_STR(qkv_client_endpoint(f), s_ep[0]);
    qkv_client_destroy(&f);

    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    get_expect(c, key, 0, "via-follower", 1, 0);
    qkv_client_destroy(&c);

    /* Pipelined writes through a follower are all redirected */
    f = client_to(2, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(f != NULL);
    for (int i = 0; i < 100; i++) {
        char k[64];
        snprintf(k, sizeof k, "t%s-redir-%d", s_tag, i);
        CU_ASSERT_EQUAL(qkv_submit_put(f, k, strlen(k), "x", 1, NULL, NULL), 0);
    }
    qkv_completion_t done[100];
    int got = 0;
    while (got < 100) {
        int n = qkv_poll(f, done + got, 100 - got, -1);
        CU_ASSERT_FATAL(n > 0);
        got += n;
    }
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(done[i].status, 0);
    KIT_ASSERT_STR(qkv_client_endpoint(f), s_ep[0]);
    qkv_client_destroy(&f);

    /* Without redirects the caller hears not_leader and the leader */
    qkv_client_options_t options = {.timeout_ms = CKIT_WAIT_MS,
                                    .max_redirects = -1};
    f = ckit_client(s_ep[3], &options);
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(qkv_put(f, key, strlen(key), "no", 2, NULL),
                    QKV_ENOTLEADER);
    if (!strstr(qkv_client_errmsg(f), s_ep[0]))
        fprintf(stderr, "\n  not_leader without %s: '%s'\n", s_ep[0],
                qkv_client_errmsg(f));
    CU_ASSERT(strstr(qkv_client_errmsg(f), s_ep[0]) != NULL);
    KIT_ASSERT_STR(qkv_client_endpoint(f), s_ep[3]);
    /* Reads are served by the follower itself, once it has applied the
       write (a follower learns of a commit a moment after the leader) */
    qkv_result_t at_leader;
    c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL_FATAL(qkv_get(c, key, strlen(key), 0, &at_leader), 0);
    free(at_leader.value);
    qkv_client_destroy(&c);
    get_expect(f, key, at_leader.index, "via-follower", 1, 0);
    qkv_client_destroy(&f);
}

static void test_min_index_on_followers(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    for (int round = 0; round < 3; round++) {
        char key[64], value[32];
        snprintf(key, sizeof key, "t%s-ryw-%d", s_tag, round);
        snprintf(value, sizeof value, "value-%d", round);
        qkv_result_t r;
        put_ok(c, key, value, &r);
        /* At once, on every follower: never an older answer */
        for (size_t i = 1; i < NODES; i++) {
            qkv_client_t *f = client_to(i, CKIT_WAIT_MS);
            CU_ASSERT_FATAL(f != NULL);
            get_expect(f, key, r.index, value, 1, r.index);
            qkv_client_destroy(&f);
        }
    }
    /* An index nobody reaches: not_ready once the wait is over */
    qkv_result_t r;
    put_ok(c, "t-ryw-far", "x", &r);
    qkv_client_t *f = client_to(1, 2000);
    int64_t start = kit_now_ms();
    int rc = qkv_get(f, "t-ryw-far", 9, r.index + 1000000, NULL);
    if (rc != QKV_ENOTREADY)
        fprintf(stderr, "\n  far min_index: %s: %s\n", qkv_strerror(rc),
                qkv_client_errmsg(f));
    CU_ASSERT_EQUAL(rc, QKV_ENOTREADY);
    CU_ASSERT(kit_now_ms() - start >= 1000);
    qkv_client_destroy(&f);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Pipelined calls */

typedef struct {
    uint64_t id;    /* from submit */
    int status;     /* from the completion; 1 = not yet */
    uint64_t index; /* from the completion */
    int seen;       /* completions for it */
} s_slot_t;

static void test_pipelined_10000(void) {
    qkv_client_options_t options = {.timeout_ms = 120000};
    qkv_client_t *c = ckit_client(s_ep[0], &options);
    CU_ASSERT_FATAL(c != NULL);
    s_slot_t *slots = calloc(PIPELINED, sizeof *slots);
    char key[64], value[64];
    /* Every write goes in before the first poll: one connection, all
       10 000 in flight. */
    for (int i = 0; i < PIPELINED; i++) {
        snprintf(key, sizeof key, "t%s-p%05d", s_tag, i);
        snprintf(value, sizeof value, "value-%d-%s", i, s_tag);
        slots[i].status = 1;
        CU_ASSERT_EQUAL_FATAL(qkv_submit_put(c, key, strlen(key), value,
                                             strlen(value), &slots[i],
                                             &slots[i].id),
                              0);
    }
    CU_ASSERT_EQUAL(qkv_outstanding(c), PIPELINED);
    CU_ASSERT_EQUAL(qkv_flush(c), 0);
    qkv_client_stats_t stats;
    qkv_client_stats(c, &stats);
    /* Thousands in flight at once on one connection */
    fprintf(stderr, "(peak in flight %llu) ",
            (unsigned long long)stats.peak_in_flight);
    CU_ASSERT(stats.peak_in_flight >= 2000);
    CU_ASSERT(stats.frames_sent >= PIPELINED / 1000);
    CU_ASSERT_EQUAL(qkv_flush(c), 0);

    qkv_completion_t *done = calloc(1000, sizeof *done);
    size_t completed = 0;
    int64_t deadline = kit_now_ms() + 180000;
    while (completed < PIPELINED && kit_now_ms() < deadline) {
        int n = qkv_poll(c, done, 1000, 1000);
        CU_ASSERT_FATAL(n >= 0);
        for (int i = 0; i < n; i++) {
            s_slot_t *slot = done[i].user;
            CU_ASSERT_FATAL(slot >= slots && slot < slots + PIPELINED);
            CU_ASSERT_EQUAL(done[i].id, slot->id);
            CU_ASSERT_EQUAL(done[i].kind, QKV_REQ_PUT);
            CU_ASSERT(done[i].value == NULL);
            slot->status = done[i].status;
            slot->index = done[i].index;
            slot->seen++;
        }
        completed += (size_t)n;
    }
    CU_ASSERT_EQUAL_FATAL(completed, PIPELINED);
    CU_ASSERT_EQUAL(qkv_outstanding(c), 0);
    CU_ASSERT_EQUAL(qkv_poll(c, done, 1000, 0), 0);
    uint64_t max_index = 0;
    size_t failed = 0;
    for (int i = 0; i < PIPELINED; i++) {
        CU_ASSERT_EQUAL(slots[i].seen, 1);
        if (slots[i].status != 0 && failed++ < 5)
            fprintf(stderr, "\n  write %d: %s\n", i,
                    qkv_strerror(slots[i].status));
        /* In order on one connection: the log keeps submission order */
        if (i > 0)
            CU_ASSERT(slots[i].index > slots[i - 1].index);
        if (slots[i].index > max_index)
            max_index = slots[i].index;
    }
    CU_ASSERT_EQUAL(failed, 0);

    /* Every node holds exactly the leader's entries */
    ckit_snapshot_t leader;
    CU_ASSERT_EQUAL_FATAL(ckit_snapshot(s_ep[0], max_index, &leader), 0);
    CU_ASSERT(leader.count >= PIPELINED);
    for (int i = 0; i < PIPELINED; i += 997) {
        snprintf(key, sizeof key, "t%s-p%05d", s_tag, i);
        snprintf(value, sizeof value, "value-%d-%s", i, s_tag);
        const qkv_item_t *item = ckit_snapshot_find(&leader, key);
        CU_ASSERT_FATAL(item != NULL);
        KIT_ASSERT_STR(item->value, value);
        CU_ASSERT_EQUAL(item->index, slots[i].index);
    }
    for (size_t n = 1; n < NODES; n++) {
        ckit_snapshot_t follower;
        CU_ASSERT_EQUAL_FATAL(ckit_snapshot(s_ep[n], max_index, &follower), 0);
        CU_ASSERT(follower.applied_index >= max_index);
        CU_ASSERT(ckit_snapshot_same(&leader, &follower));
        ckit_snapshot_free(&follower);
    }
    ckit_snapshot_free(&leader);
    free(done);
    free(slots);
    qkv_client_destroy(&c);
}

static void test_pipelined_mixed(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    enum { N = 100 };
    char key[64], value[64];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "t%s-m%d", s_tag, i);
        snprintf(value, sizeof value, "m%d", i);
        CU_ASSERT_EQUAL(qkv_submit_put(c, key, strlen(key), value,
                                       strlen(value), NULL, NULL),
                        0);
    }
    qkv_completion_t done[3 * N + 1];
    int got = 0;
    uint64_t max_index = 0;
    while (got < N) {
        int n = qkv_poll(c, done, N, -1);
        CU_ASSERT_FATAL(n > 0);
        for (int i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(done[i].status, 0);
            if (done[i].index > max_index)
                max_index = done[i].index;
        }
        got += n;
    }
    /* Gets (user = the key's number + 1), a missing key, deletes of the
       even keys */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "t%s-m%d", s_tag, i);
        CU_ASSERT_EQUAL(qkv_submit_get(c, key, strlen(key), max_index,
                                       (void *)(intptr_t)(i + 1), NULL),
                        0);
    }
    CU_ASSERT_EQUAL(
        qkv_submit_get(c, "t-missing-key", 13, 0, (void *)(intptr_t)-1, NULL),
        0);
    qkv_poll(c, done, 0, 0); /* sends, collects nothing */
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "t%s-m%d", s_tag, i);
        CU_ASSERT_EQUAL(qkv_submit_delete(c, key, strlen(key),
                                          (void *)(intptr_t)(1000 + i), NULL),
                        0);
    }
    got = 0;
    int total = N + 1 + N / 2;
    while (got < total) {
        int n = qkv_poll(c, done + got, (size_t)(total - got), -1);
        CU_ASSERT_FATAL(n > 0);
        got += n;
    }
    int gets = 0, deletes = 0;
    for (int i = 0; i < got; i++) {
        intptr_t user = (intptr_t)done[i].user;
        if (user == -1) {
            CU_ASSERT_EQUAL(done[i].kind, QKV_REQ_GET);
            CU_ASSERT_EQUAL(done[i].status, QKV_ENOTFOUND);
        } else if (user >= 1000) {
            CU_ASSERT_EQUAL(done[i].kind, QKV_REQ_DELETE);
            CU_ASSERT_EQUAL(done[i].status, 0);
            CU_ASSERT(done[i].deleted);
            deletes++;
        } else {
            CU_ASSERT_EQUAL(done[i].kind, QKV_REQ_GET);
            CU_ASSERT_EQUAL(done[i].status, 0);
            snprintf(value, sizeof value, "m%d", (int)user - 1);
            KIT_ASSERT_STR(done[i].value, value);
            CU_ASSERT_EQUAL(done[i].seq, 1);
            gets++;
        }
        free(done[i].value);
    }
    CU_ASSERT_EQUAL(gets, N);
    CU_ASSERT_EQUAL(deletes, N / 2);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Idempotent retries */

static uint64_t last_index(qkv_client_t *c) {
    qkv_health_t h;
    CU_ASSERT_EQUAL_FATAL(qkv_health(c, &h), 0);
    uint64_t index = h.last_index;
    qkv_health_clear(&h);
    return index;
}

static void test_idempotent_retry(void) {
    uint64_t id = 0;
    kit_rng_t rng;
    kit_rng_seed(&rng, (uint64_t)kit_now_ms());
    while (!id)
        id = kit_rng_next(&rng);
    qkv_client_options_t options = {
        .timeout_ms = CKIT_WAIT_MS, .client_id = id, .first_seq = 7};
    qkv_client_t *c = ckit_client(s_ep[0], &options);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(qkv_client_id(c), id);
    CU_ASSERT_EQUAL(qkv_client_next_seq(c), 7);
    char key[64];
    key_of(key, sizeof key, "idem");
    qkv_result_t first, again;
    put_ok(c, key, "original", &first);
    CU_ASSERT_EQUAL(qkv_client_next_seq(c), 8);
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, NULL));
    uint64_t before = last_index(c);

    /* The same (client_id, client_seq) again: the original answer */
    qkv_client_set_next_seq(c, 7);
    put_ok(c, key, "original", &again);
    CU_ASSERT_EQUAL(again.index, first.index);
    CU_ASSERT_EQUAL(again.seq, first.seq);
    /* Even with another value: it is the same write */
    qkv_client_set_next_seq(c, 7);
    put_ok(c, key, "changed", &again);
    CU_ASSERT_EQUAL(again.index, first.index);
    /* And from another handle with the same identity */
    qkv_client_t *twin = ckit_client(s_ep[0], &options);
    CU_ASSERT_FATAL(twin != NULL);
    put_ok(twin, key, "original", &again);
    CU_ASSERT_EQUAL(again.index, first.index);
    qkv_client_destroy(&twin);
    CU_ASSERT_EQUAL(last_index(c), before);
    get_expect(c, key, 0, "original", first.seq, first.index);

    /* A new seq is a new write */
    qkv_client_set_next_seq(c, 8);
    put_ok(c, key, "next", &again);
    CU_ASSERT(again.index > first.index);
    CU_ASSERT_EQUAL(again.seq, first.seq + 1);
    qkv_client_destroy(&c);
}

/* A leader that stops answering (SIGSTOP) for longer than retry_ms makes
   the handle reconnect and send everything again; once it runs again,
   every write is answered and none is appended twice. */
static void *s_continue_later(void *arg) {
    struct timespec ts = {1, 500 * 1000000L};
    nanosleep(&ts, NULL);
    kill(*(pid_t *)arg, SIGCONT);
    return NULL;
}

static void test_stalled_leader_retries(void) {
    enum { N = 3000 };
    pid_t leader = s_cluster.nodes[0].pid;
    CU_ASSERT_FATAL(leader > 0);
    qkv_client_options_t options = {.timeout_ms = 120000, .retry_ms = 300};
    qkv_client_t *c = ckit_client(s_ep[0], &options);
    CU_ASSERT_FATAL(c != NULL);
    uint64_t before = 0;
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, &before));

    /* Pipelined: stopped while the writes are in flight */
    uint64_t *index = calloc(N, sizeof *index);
    char key[64];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "t%s-stall%d", s_tag, i);
        CU_ASSERT_EQUAL_FATAL(
            qkv_submit_put(c, key, strlen(key), "s", 1, &index[i], NULL), 0);
    }
    CU_ASSERT_EQUAL(qkv_flush(c), 0);
    kill(leader, SIGSTOP);
    qkv_completion_t done[500];
    int got = 0, failed = 0;
    int64_t resume = kit_now_ms() + 1500;
    bool stopped = true;
    while (got < N) {
        if (stopped && kit_now_ms() >= resume) {
            kill(leader, SIGCONT);
            stopped = false;
        }
        int n = qkv_poll(c, done, 500, 100);
        CU_ASSERT_FATAL(n >= 0);
        for (int i = 0; i < n; i++) {
            failed += done[i].status != 0;
            *(uint64_t *)done[i].user = done[i].index;
        }
        got += n;
    }
    if (stopped)
        kill(leader, SIGCONT);
    CU_ASSERT_EQUAL(failed, 0);
    qkv_client_stats_t stats;
    qkv_client_stats(c, &stats);
    CU_ASSERT(stats.failovers >= 1);
    CU_ASSERT(stats.resent >= 1);
    for (int i = 1; i < N; i++)
        CU_ASSERT(index[i] > index[i - 1]);
    free(index);

    /* Blocking: the put waits through the stop and is applied once */
    uint64_t middle = 0;
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, &middle));
    CU_ASSERT_EQUAL(middle, before + N);
    pthread_t thread;
    kill(leader, SIGSTOP);
    CU_ASSERT_FATAL(pthread_create(&thread, NULL, s_continue_later, &leader) ==
                    0);
    key_of(key, sizeof key, "stall-blocking");
    qkv_result_t r;
    put_ok(c, key, "once", &r);
    pthread_join(thread, NULL);
    CU_ASSERT_EQUAL(r.index, middle + 1);
    /* Silent for 1.5 s with retry_ms 300: the client probed and either
       asked again or failed over (a request still queued behind a
       failover is sent fresh, not counted as resent). */
    qkv_client_stats_t later;
    qkv_client_stats(c, &later);
    bool retried = later.resent > stats.resent ||
                   later.failovers > stats.failovers;
    if (!retried)
        fprintf(stderr, "\n  resent %llu -> %llu, failovers %llu -> %llu\n",
                (unsigned long long)stats.resent,
                (unsigned long long)later.resent,
                (unsigned long long)stats.failovers,
                (unsigned long long)later.failovers);
    CU_ASSERT(retried);
    uint64_t after = 0;
    CU_ASSERT_FATAL(ckit_settled(s_ep[0], CKIT_WAIT_MS, &after));
    CU_ASSERT_EQUAL(after, middle + 1);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Failures: timeouts, bad arguments, fallbacks, limits */

static void test_timeouts_and_arguments(void) {
    char err[256] = "";
    CU_ASSERT(qkv_client_new("nonsense", NULL, err, sizeof err) == NULL);
    CU_ASSERT(*err != '\0');
    CU_ASSERT(qkv_client_new("", NULL, NULL, 0) == NULL);
    CU_ASSERT(qkv_client_new(NULL, NULL, NULL, 0) == NULL);
    CU_ASSERT(qkv_client_new("tcp://127.0.0.1:1,bad", NULL, NULL, 0) == NULL);
    KIT_ASSERT_STR(qkv_strerror(QKV_ETIMEOUT), "timed out");
    CU_ASSERT(qkv_strerror(12345) != NULL);

    /* Nobody listens: every request times out, none waits longer */
    char dead[64];
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d", kit_free_port());
    qkv_client_options_t options = {
        .timeout_ms = 800, .retry_ms = 200, .max_inflight = 10};
    qkv_client_t *c = ckit_client(dead, &options);
    CU_ASSERT_FATAL(c != NULL);
    int64_t start = kit_now_ms();
    CU_ASSERT_EQUAL(qkv_put(c, "k", 1, "v", 1, NULL), QKV_ETIMEOUT);
    int64_t took = kit_now_ms() - start;
    CU_ASSERT(took >= 700 && took < 5000);
    CU_ASSERT(*qkv_client_errmsg(c) != '\0');
    qkv_result_t r;
    CU_ASSERT_EQUAL(qkv_get(c, "k", 1, 0, &r), QKV_ETIMEOUT);
    CU_ASSERT(r.value == NULL);

    /* The window: max_inflight, then QKV_EAGAIN */
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(qkv_submit_get(c, "k", 1, 0, NULL, NULL), 0);
    CU_ASSERT_EQUAL(qkv_submit_get(c, "k", 1, 0, NULL, NULL), QKV_EAGAIN);
    qkv_completion_t done[10];
    int got = 0;
    start = kit_now_ms();
    while (got < 10) {
        int n = qkv_poll(c, done + got, (size_t)(10 - got), -1);
        CU_ASSERT_FATAL(n > 0);
        got += n;
    }
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(done[i].status, QKV_ETIMEOUT);
    CU_ASSERT(kit_now_ms() - start < 5000);
    /* Nothing outstanding: poll returns at once */
    CU_ASSERT_EQUAL(qkv_poll(c, done, 10, -1), 0);

    /* Bad keys and values never leave the process */
    CU_ASSERT_EQUAL(qkv_put(c, "", 0, "v", 1, NULL), QKV_EINVAL);
    CU_ASSERT_EQUAL(qkv_get(c, NULL, 0, 0, NULL), QKV_EINVAL);
    CU_ASSERT_EQUAL(qkv_submit_delete(c, "", 0, NULL, NULL), QKV_EINVAL);
    size_t big = (1u << 20) + 1;
    char *huge = calloc(1, big);
    memset(huge, 'k', big);
    CU_ASSERT_EQUAL(qkv_get(c, huge, big, 0, NULL), QKV_ETOOLARGE);
    free(huge);
    qkv_client_destroy(&c);
}

static void test_value_too_large_for_node(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    size_t big = (1u << 20) + 1; /* MAX_VALUE_BYTES + 1 */
    char *value = malloc(big);
    memset(value, 'v', big);
    int rc = qkv_put(c, "t-too-large", 11, value, big, NULL);
    CU_ASSERT_EQUAL(rc, QKV_ETOOLARGE);
    free(value);
    /* The connection is still good */
    char key[64];
    key_of(key, sizeof key, "after-large");
    put_ok(c, key, "fine", NULL);
    qkv_client_destroy(&c);
}

static void test_fallback_endpoint(void) {
    char list[160];
    snprintf(list, sizeof list, "tcp://127.0.0.1:%d, %s", kit_free_port(),
             s_ep[0]);
    qkv_client_options_t options = {.timeout_ms = 20000, .retry_ms = 300};
    qkv_client_t *c = ckit_client(list, &options);
    CU_ASSERT_FATAL(c != NULL);
    char key[64];
    key_of(key, sizeof key, "fallback");
    int64_t start = kit_now_ms();
    put_ok(c, key, "found", NULL);
    CU_ASSERT(kit_now_ms() - start < 10000);
    KIT_ASSERT_STR(qkv_client_endpoint(c), s_ep[0]);
    get_expect(c, key, 0, "found", 1, 0);
    qkv_client_destroy(&c);
}

/*  ---------------------------------------------------------------------
    Reset (last: it empties the cluster) */

static void test_reset(void) {
    qkv_client_t *c = client_to(0, CKIT_WAIT_MS);
    CU_ASSERT_FATAL(c != NULL);
    qkv_result_t r;
    CU_ASSERT_EQUAL_FATAL(qkv_reset(c, &r), 0);
    CU_ASSERT(r.index > 0);
    for (size_t i = 0; i < NODES; i++) {
        ckit_snapshot_t snap;
        CU_ASSERT_EQUAL_FATAL(ckit_snapshot(s_ep[i], r.index, &snap), 0);
        CU_ASSERT_EQUAL(snap.count, 0);
        ckit_snapshot_free(&snap);
    }
    char key[64];
    key_of(key, sizeof key, "pg");
    CU_ASSERT_EQUAL(qkv_get(c, key, strlen(key), 0, NULL), QKV_ENOTFOUND);
    qkv_client_destroy(&c);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {KIT_TEST(test_put_get),
                                       KIT_TEST(test_delete_restarts_seq),
                                       KIT_TEST(test_health),
                                       KIT_TEST(test_not_leader_redirect),
                                       KIT_TEST(test_min_index_on_followers),
                                       KIT_TEST(test_pipelined_10000),
                                       KIT_TEST(test_pipelined_mixed),
                                       KIT_TEST(test_idempotent_retry),
                                       KIT_TEST(test_stalled_leader_retries),
                                       KIT_TEST(test_timeouts_and_arguments),
                                       KIT_TEST(test_value_too_large_for_node),
                                       KIT_TEST(test_fallback_endpoint),
                                       KIT_TEST(test_reset),
                                       KIT_TESTS_END};
    return kit_add_suite("libqkv", s_init, s_cleanup, tests) ? 0 : -1;
}

int main(void) {
    kit_node_bin(); /* skips (77) when there is no node to start */
    return kit_run(s_add_suites);
}
