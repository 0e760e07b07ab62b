/*  test_durability.c - every acknowledged write survives a crash.

    Each write the tests get a 200 for has a key of its own, recorded with
    its value; after the crash and the restart every one of them is looked
    for, with its value, on the leader and on every follower, so an
    overwrite cannot hide a loss.

    crash: a leader and five followers, WRITE_QUORUM=2, FSYNC=always. The
        leader is killed (-9) while four writers go on and restarted on its
        data; then all six at once; then a follower, which catches up by
        the log (no snapshot).
    snapshots: a leader and three followers, WRITE_QUORUM=1, a snapshot
        every ~100 entries: a follower away past the kept log gets a
        snapshot while writes go on; a follower killed again and again
        while snapshots are taken restarts whole.
    files: a stopped follower's log with a torn tail restarts; one with a
        corrupt record refuses to start, naming the file and offset, and
        REPAIR_LOG=1 cuts it there, after which it catches up.
    disk_full (root: a 4 MiB tmpfs): writes answer 507 while the disk is
        full, nothing acknowledged is lost, and writes work again once
        there is space. A follower that has not caught up says so, and
        refuses reads with SYNCING_READS=refuse.
*/
#include "kit.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MS 20000
#define WRITERS 4

static char s_tag[9];

/*  ---------------------------------------------------------------------
    Writers that remember what was acknowledged */

typedef struct {
    char key[64];
    char value[32];
} acked_t;

typedef struct {
    const char *url; /* the leader */
    int id;          /* the writer's number */
    int stop;        /* atomic: set to end it */
    int next;        /* the next key number */
    acked_t *acked;  /* what got a 200 */
    size_t count, cap;
    int other; /* answers other than 200 (or none) */
    pthread_t thread;
} writer_t;

static int s_round; /* keys of each run of writers differ */

static void *s_writer_run(void *arg) {
    writer_t *w = arg;
    kit_http_set_timeout_ms(3000);
    kit_http_set_quiet(true);
    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        acked_t a;
        snprintf(a.key, sizeof a.key, "t%s-r%d-w%d-%d", s_tag, s_round, w->id,
                 w->next);
        snprintf(a.value, sizeof a.value, "v%d", w->next++);
        long status;
        json_t *r =
            kit_qkv_write(w->url, "/put", a.key, a.value, &status, NULL);
        json_decref(r);
        if (status != 200) {
            w->other++;
            usleep(20000); /* the leader is down or busy */
            continue;
        }
        if (w->count == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 256;
            w->acked = realloc(w->acked, w->cap * sizeof *w->acked);
            if (!w->acked)
                abort();
        }
        w->acked[w->count] = a;
        __atomic_store_n(&w->count, w->count + 1, __ATOMIC_RELEASE);
    }
    kit_http_thread_done();
    return NULL;
}

static void writers_start(writer_t *w, size_t n, const char *url) {
    s_round++;
    for (size_t i = 0; i < n; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].url = url;
        w[i].id = (int)i;
        CU_ASSERT_FATAL(
            pthread_create(&w[i].thread, NULL, s_writer_run, &w[i]) == 0);
    }
}

static size_t acked_total(writer_t *w, size_t n) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += __atomic_load_n(&w[i].count, __ATOMIC_ACQUIRE);
    return total;
}

typedef struct {
    writer_t *w;
    size_t n, target;
} progress_t;

static bool s_progressed(void *arg) {
    progress_t *p = arg;
    return acked_total(p->w, p->n) >= p->target;
}

/* Waits until `more` writes beyond those acknowledged so far are. */
static bool writers_wait(writer_t *w, size_t n, size_t more) {
    progress_t p = {w, n, acked_total(w, n) + more};
    return kit_poll_until(WAIT_MS, s_progressed, &p);
}

static void writers_stop(writer_t *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        __atomic_store_n(&w[i].stop, 1, __ATOMIC_RELEASE);
    for (size_t i = 0; i < n; i++)
        pthread_join(w[i].thread, NULL);
}

static void writers_free(writer_t *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(w[i].acked);
}

/* Every acknowledged write is in node's dump with its value. Returns the
   number missing (and prints the first few). */
static size_t missing_on(const char *url, writer_t *w, size_t n) {
    long status;
    json_t *d = kit_qkv_dump(url, &status);
    json_t *entries = json_object_get(d, "entries");
    size_t missing = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < w[i].count; k++) {
            json_t *e = json_object_get(entries, w[i].acked[k].key);
            const char *v = kit_json_str(e, "value");
            if (v && strcmp(v, w[i].acked[k].value) == 0)
                continue;
            if (missing++ < 3)
                fprintf(stderr, "\n  %s: acknowledged %s=%s is %s\n", url,
                        w[i].acked[k].key, w[i].acked[k].value,
                        v ? v : "missing");
        }
    json_decref(d);
    return missing;
}

/* Waits for the cluster to settle and checks every acknowledged write on
   every node. */
static void check_everywhere(kit_cluster_t *c, writer_t *w, size_t n) {
    const char *leader = c->nodes[0].url;
    CU_ASSERT(kit_qkv_settled(leader, WAIT_MS, NULL));
    CU_ASSERT_EQUAL(missing_on(leader, w, n), 0);
    for (size_t i = 1; i < c->count; i++) {
        CU_ASSERT(kit_qkv_wait_same_dump(leader, c->nodes[i].url, WAIT_MS));
        CU_ASSERT_EQUAL(missing_on(c->nodes[i].url, w, n), 0);
    }
    fprintf(stderr, "\n  %zu acknowledged writes, all on %zu nodes\n",
            acked_total(w, n), c->count);
}

static double metric(const char *url, const char *name) {
    char full[512], *body = NULL;
    long status;
    double value = -1;
    snprintf(full, sizeof full, "%s/metrics", url);
    if (kit_http_get(full, &status, &body) == 0 && status == 200)
        kit_prom_value(body, name, &value);
    free(body);
    return value;
}

/*  ---------------------------------------------------------------------
    crash: 1 + 5, quorum 2, FSYNC=always */

static kit_cluster_t s_crash;

static int s_crash_start(void) {
    kit_cluster_opts_t opts = {
        .followers = 5, .write_quorum = 2, .replication_timeout_ms = 2000};
    return kit_cluster_start(&s_crash, &opts);
}

static int s_crash_stop(void) {
    return kit_cluster_stop(&s_crash) == 0 ? 0 : -1;
}

static void test_leader_kill9_under_writes(void) {
    writer_t w[WRITERS];
    writers_start(w, WRITERS, s_crash.nodes[0].url);
    CU_ASSERT(writers_wait(w, WRITERS, 300));
    kit_node_kill(&s_crash.nodes[0]);
    usleep(200000);
    CU_ASSERT_FATAL(kit_cluster_restart(&s_crash, 0, WAIT_MS) == 0);
    CU_ASSERT(writers_wait(w, WRITERS, 200));
    writers_stop(w, WRITERS);
    check_everywhere(&s_crash, w, WRITERS);
    writers_free(w, WRITERS);
}

static void test_kill9_all_six(void) {
    writer_t w[WRITERS];
    writers_start(w, WRITERS, s_crash.nodes[0].url);
    CU_ASSERT(writers_wait(w, WRITERS, 300));
    for (size_t i = 0; i < s_crash.count; i++)
        kit_node_kill(&s_crash.nodes[i]);
    for (size_t i = 1; i <= s_crash.count; i++)
        CU_ASSERT_FATAL(
            kit_cluster_restart(&s_crash, i % s_crash.count, WAIT_MS) == 0);
    CU_ASSERT(writers_wait(w, WRITERS, 200));
    writers_stop(w, WRITERS);
    check_everywhere(&s_crash, w, WRITERS);
    writers_free(w, WRITERS);
}

static void test_follower_catches_up_by_log(void) {
    kit_node_t *f = &s_crash.nodes[3];
    const char *leader = s_crash.nodes[0].url;
    double sent = metric(leader, "qkv_snapshots_sent_total");
    kit_node_kill(f);
    writer_t w[1];
    writers_start(w, 1, leader);
    CU_ASSERT(writers_wait(w, 1, 300));
    writers_stop(w, 1);
    CU_ASSERT_FATAL(kit_cluster_restart(&s_crash, 3, WAIT_MS) == 0);
    check_everywhere(&s_crash, w, 1);
    /* by the log: no snapshot went or came */
    CU_ASSERT_EQUAL(metric(f->url, "qkv_snapshots_installed_total"), 0);
    CU_ASSERT_EQUAL(metric(leader, "qkv_snapshots_sent_total"), sent);
    writers_free(w, 1);
}

/*  ---------------------------------------------------------------------
    snapshots: 1 + 3, quorum 1, a snapshot every ~100 entries */

static kit_cluster_t s_snap;

static int s_snap_start(void) {
    static const char *const args[] = {"--snapshot-entries", "100", NULL};
    kit_cluster_opts_t opts = {.followers = 3,
                               .write_quorum = 1,
                               .replication_timeout_ms = 2000,
                               .node_args = args};
    return kit_cluster_start(&s_snap, &opts);
}

static int s_snap_stop(void) {
    return kit_cluster_stop(&s_snap) == 0 ? 0 : -1;
}

static void test_follower_past_the_kept_log(void) {
    kit_node_t *f = &s_snap.nodes[3];
    const char *leader = s_snap.nodes[0].url;
    kit_node_kill(f);
    writer_t w[WRITERS];
    writers_start(w, WRITERS, leader);
    /* several snapshots: the leader's log no longer reaches back to it */
    CU_ASSERT(writers_wait(w, WRITERS, 600));
    CU_ASSERT(kit_qkv_health_u64(leader, "snapshot_index") > 300);
    CU_ASSERT_FATAL(kit_cluster_restart(&s_snap, 3, WAIT_MS) == 0);
    CU_ASSERT(writers_wait(w, WRITERS, 300)); /* writes go on meanwhile */
    writers_stop(w, WRITERS);
    check_everywhere(&s_snap, w, WRITERS);
    CU_ASSERT(metric(f->url, "qkv_snapshots_installed_total") >= 1);
    CU_ASSERT(metric(leader, "qkv_snapshots_sent_total") >= 1);
    /* its own snapshot and log hold it: a restart keeps everything */
    kit_node_kill(f);
    CU_ASSERT_FATAL(kit_cluster_restart(&s_snap, 3, WAIT_MS) == 0);
    check_everywhere(&s_snap, w, WRITERS);
    writers_free(w, WRITERS);
}

static void test_kill9_while_snapshotting(void) {
    const char *leader = s_snap.nodes[0].url;
    writer_t w[WRITERS];
    writers_start(w, WRITERS, leader);
    for (int round = 0; round < 4; round++) {
        CU_ASSERT(writers_wait(w, WRITERS, 150));
        kit_node_kill(&s_snap.nodes[1 + round % 3]);
        CU_ASSERT_FATAL(kit_cluster_restart(&s_snap, 1 + round % 3, WAIT_MS) ==
                        0);
    }
    kit_node_kill(&s_snap.nodes[0]);
    CU_ASSERT_FATAL(kit_cluster_restart(&s_snap, 0, WAIT_MS) == 0);
    CU_ASSERT(writers_wait(w, WRITERS, 150));
    writers_stop(w, WRITERS);
    check_everywhere(&s_snap, w, WRITERS);
    writers_free(w, WRITERS);
}

/*  ---------------------------------------------------------------------
    files: damaged logs of a stopped follower (1 + 2, quorum 1) */

static kit_cluster_t s_files;

static int s_files_start(void) {
    kit_cluster_opts_t opts = {.followers = 2, .write_quorum = 1};
    return kit_cluster_start(&s_files, &opts);
}

static int s_files_stop(void) {
    return kit_cluster_stop(&s_files) == 0 ? 0 : -1;
}

/* The path of the oldest (newest: last) wal-*.log file in dir. */
static bool wal_file(const char *dir, bool last, char *path, size_t size) {
    DIR *d = opendir(dir);
    char best[64] = "";
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, "wal-", 4) != 0)
            continue;
        if (!best[0] || (strcmp(de->d_name, best) > 0) == last)
            snprintf(best, sizeof best, "%.60s", de->d_name);
    }
    if (d)
        closedir(d);
    snprintf(path, size, "%s/%s", dir, best);
    return best[0] != '\0';
}

/* Where a segment's written data ends (segments are allocated whole when
   made: the rest of the file is zeros). */
static long data_end(const char *path) {
    FILE *f = fopen(path, "r");
    long end = 0, at = 0;
    int c;
    while (f && (c = fgetc(f)) != EOF) {
        at++;
        if (c)
            end = at;
    }
    if (f)
        fclose(f);
    return f ? end : -1;
}

static bool log_has(const kit_node_t *node, const char *text) {
    FILE *f = fopen(node->log_path, "r");
    char line[2048];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* 100 writes to the files cluster, all settled; then f stops cleanly. */
static void write_then_stop(writer_t *w, kit_node_t *f) {
    writers_start(w, 1, s_files.nodes[0].url);
    CU_ASSERT(writers_wait(w, 1, 100));
    writers_stop(w, 1);
    CU_ASSERT(kit_qkv_settled(s_files.nodes[0].url, WAIT_MS, NULL));
    CU_ASSERT_EQUAL(kit_node_stop(f, 10000), 0);
}

static void test_torn_tail_is_cut(void) {
    kit_node_t *f = &s_files.nodes[1];
    writer_t w[1];
    write_then_stop(w, f);
    char path[1024];
    CU_ASSERT_FATAL(wal_file(f->data_dir, true, path, sizeof path));
    /* the newest segment's data ends in half a record */
    long end = data_end(path);
    FILE *out = fopen(path, "r+");
    CU_ASSERT_FATAL(out != NULL && end > 0);
    fseek(out, end, SEEK_SET);
    fwrite("\x10\x00\x00\x00\x40\x00\x00\x00\x02\x01", 1, 10, out);
    fclose(out);
    CU_ASSERT_FATAL(kit_cluster_restart(&s_files, 1, WAIT_MS) == 0);
    CU_ASSERT(log_has(f, "a torn last write, cut"));
    check_everywhere(&s_files, w, 1);
    writers_free(w, 1);
}

static void test_corrupt_record_stops_then_repairs(void) {
    kit_node_t *f = &s_files.nodes[2];
    writer_t w[1];
    write_then_stop(w, f);
    char path[1024];
    CU_ASSERT_FATAL(wal_file(f->data_dir, false, path, sizeof path));
    long size = data_end(path);
    CU_ASSERT_FATAL(size > 2000);
    /* a byte in the middle of the oldest segment goes bad */
    FILE *io = fopen(path, "r+");
    CU_ASSERT_FATAL(io != NULL);
    fseek(io, size / 2, SEEK_SET);
    int c = fgetc(io);
    fseek(io, size / 2, SEEK_SET);
    fputc(c ^ 0x5a, io);
    fclose(io);
    CU_ASSERT_FATAL(kit_node_start(f) == 0);
    for (int i = 0; i < 100 && kit_node_running(f); i++)
        usleep(50000);
    CU_ASSERT(!kit_node_running(f));
    CU_ASSERT(log_has(f, "offset"));
    CU_ASSERT(log_has(f, "REPAIR_LOG"));
    kit_node_args(f, "--repair-log", "1", NULL);
    CU_ASSERT_FATAL(kit_node_start(f) == 0);
    CU_ASSERT(kit_node_wait_healthy(f, WAIT_MS) == 0);
    CU_ASSERT(log_has(f, "cut (REPAIR_LOG)"));
    check_everywhere(&s_files, w, 1);
    writers_free(w, 1);
}

/*  ---------------------------------------------------------------------
    disk_full: a leader alone on a 4 MiB tmpfs */

static void test_disk_full(void) {
    if (geteuid() != 0) {
        fprintf(stderr, "\n  SKIPPED: mounting a small tmpfs needs root "
                        "(CI runs as root)\n");
        return;
    }
    char mnt[256];
    snprintf(mnt, sizeof mnt, "%s/data/tmpfs-%s", kit_log_dir(), s_tag);
    mkdir(mnt, 0755);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
        fprintf(stderr, "\n  SKIPPED: cannot mount a tmpfs: %s\n",
                strerror(errno));
        rmdir(mnt);
        return;
    }
    char filler[300], dir[300];
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    snprintf(dir, sizeof dir, "%s/leader", mnt);
    /* most of the space taken: the log fills the rest */
    FILE *f = fopen(filler, "w");
    static char block[4096];
    for (int i = 0; f && i < 3 * 256; i++)
        fwrite(block, 1, sizeof block, f);
    if (f)
        fclose(f);
    kit_node_t node;
    int port = kit_free_port();
    kit_node_init(&node, "full", port, 0);
    char text[16];
    snprintf(text, sizeof text, "%d", port);
    kit_node_args(&node, "--role", "leader", "--port", text, "--data-dir", dir,
                  "--wal-segment-bytes", "65536", NULL);
    CU_ASSERT_FATAL(kit_node_start(&node) == 0);
    CU_ASSERT_FATAL(kit_node_wait_healthy(&node, WAIT_MS) == 0);
    writer_t w[1];
    memset(w, 0, sizeof w);
    w->url = node.url;
    char value[1024];
    memset(value, 'x', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    long status = 200;
    int n = 0, full = 0;
    for (; n < 4000 && full < 3; n++) {
        char key[64];
        snprintf(key, sizeof key, "t%s-full-%d", s_tag, n);
        json_t *r = kit_qkv_write(node.url, "/put", key, value, &status, NULL);
        const char *st = kit_json_str(r, "status");
        if (status == 507) {
            full++;
            CU_ASSERT(st && strcmp(st, "insufficient_storage") == 0);
        } else if (status == 200) {
            if (w->count == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 256;
                w->acked = realloc(w->acked, w->cap * sizeof *w->acked);
            }
            acked_t *a = &w->acked[w->count++];
            snprintf(a->key, sizeof a->key, "%s", key);
            snprintf(a->value, sizeof a->value, "%.31s", value);
        }
        json_decref(r);
    }
    CU_ASSERT(full == 3);
    CU_ASSERT(w->count > 100);
    CU_ASSERT(kit_node_running(&node));
    json_t *h = kit_qkv_health(node.url, &status);
    CU_ASSERT(kit_json_str(h, "error") != NULL);
    json_decref(h);
    /* space again: writes work once the log's retry comes */
    unlink(filler);
    bool again = false;
    for (int i = 0; i < 100 && !again; i++, usleep(50000)) {
        json_t *r =
            kit_qkv_write(node.url, "/put", "again", "1", &status, NULL);
        again = status == 200;
        json_decref(r);
    }
    CU_ASSERT(again);
    /* every acknowledged write is there, also after a crash */
    for (size_t k = 0; k < w->count; k++)
        snprintf(w->acked[k].value, sizeof w->acked[k].value, "%.31s", value);
    kit_node_kill(&node);
    CU_ASSERT_FATAL(kit_node_start(&node) == 0);
    CU_ASSERT_FATAL(kit_node_wait_healthy(&node, WAIT_MS) == 0);
    long st2;
    json_t *d = kit_qkv_dump(node.url, &st2);
    json_t *entries = json_object_get(d, "entries");
    size_t missing = 0;
    for (size_t k = 0; k < w->count; k++) {
        const char *v =
            kit_json_str(json_object_get(entries, w->acked[k].key), "value");
        missing += !v || strcmp(v, value) != 0;
    }
    json_decref(d);
    CU_ASSERT_EQUAL(missing, 0);
    fprintf(stderr,
            "\n  %zu writes acknowledged before the disk filled, %zu "
            "missing after a crash\n",
            w->count, missing);
    kit_node_free(&node);
    free(w->acked);
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
}

/* A follower that has not caught up says so in /health; with
   SYNCING_READS=refuse it answers reads not_ready meanwhile, with the
   default (serve) it answers from what it holds. */
static void test_syncing_follower(void) {
    const char *modes[] = {"refuse", "serve"};
    for (int i = 0; i < 2; i++) {
        kit_node_t f;
        int port = kit_free_port(), repl = kit_free_port();
        char p[16], r[16];
        snprintf(p, sizeof p, "%d", port);
        snprintf(r, sizeof r, "%d", repl);
        kit_node_init(&f, "syncing", port, repl);
        kit_node_args(&f, "--role", "follower", "--port", p, "--repl-port", r,
                      "--syncing-reads", modes[i], NULL);
        CU_ASSERT_FATAL(kit_node_start(&f) == 0);
        CU_ASSERT_FATAL(kit_node_wait_healthy(&f, WAIT_MS) == 0);
        long status;
        json_t *h = kit_qkv_health(f.url, &status);
        CU_ASSERT(json_is_true(json_object_get(h, "syncing")));
        json_decref(h);
        json_t *r1 = kit_qkv_read(f.url, "/get", "some-key", &status);
        const char *st = kit_json_str(r1, "status");
        bool refused = status == 503 && st && strcmp(st, "not_ready") == 0;
        CU_ASSERT(i == 0 ? refused : status == 404);
        json_decref(r1);
        kit_node_free(&f);
    }
}

static int s_add_suites(void) {
    static const kit_test_t crash[] = {
        KIT_TEST(test_leader_kill9_under_writes), KIT_TEST(test_kill9_all_six),
        KIT_TEST(test_follower_catches_up_by_log), KIT_TESTS_END};
    static const kit_test_t snaps[] = {
        KIT_TEST(test_follower_past_the_kept_log),
        KIT_TEST(test_kill9_while_snapshotting), KIT_TESTS_END};
    static const kit_test_t files[] = {
        KIT_TEST(test_torn_tail_is_cut),
        KIT_TEST(test_corrupt_record_stops_then_repairs), KIT_TESTS_END};
    static const kit_test_t disk[] = {KIT_TEST(test_disk_full),
                                      KIT_TEST(test_syncing_follower),
                                      KIT_TESTS_END};
    if (!kit_add_suite("crash", s_crash_start, s_crash_stop, crash) ||
        !kit_add_suite("snapshots", s_snap_start, s_snap_stop, snaps) ||
        !kit_add_suite("files", s_files_start, s_files_stop, files) ||
        !kit_add_suite("disk_full", NULL, NULL, disk))
        return -1;
    return 0;
}

int main(void) {
    const char *external = getenv("QKV_TEST_NODES");
    if (external && *external)
        kit_skip("test_durability needs local processes (QKV_TEST_NODES is "
                 "set)",
                 false);
    kit_node_bin();
    snprintf(s_tag, sizeof s_tag, "%08x", (unsigned)getpid());
    return kit_run(s_add_suites);
}
