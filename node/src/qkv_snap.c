/*  qkv_snap.c - snapshot images, files and the saver thread (qkv_snap.h).
 */
#include "qkv_snap.h"
#include "qkv_hash.h"
#include "qkv_io.h"
#include "qkv_le.h"
#include "qkv_say.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_MAGIC "qkv-snap"
#define S_VERSION 1
#define S_HEAD_BYTES (8 + 4 + 4 + 8 * 4)
#define S_KEY_FIXED (4 + 4 + 8 + 8)

/*  =====================================================================
    Images */

typedef struct {
    qkv_buf_t *out;
    uint64_t keys;
    bool failed;
} s_enc_t;

static void s_visit(void *arg, const char *key, size_t key_len,
                    const char *value, size_t value_len, uint64_t seq,
                    uint64_t index) {
    s_enc_t *e = arg;
    size_t len = S_KEY_FIXED + key_len + value_len;
    if (e->failed || qkv_buf_reserve(e->out, len) != 0) {
        e->failed = true;
        return;
    }
    uint8_t *p = (uint8_t *)e->out->data + e->out->size;
    qkv_put_le32(p, (uint32_t)key_len);
    qkv_put_le32(p + 4, (uint32_t)value_len);
    qkv_put_le64(p + 8, seq);
    qkv_put_le64(p + 16, index);
    memcpy(p + S_KEY_FIXED, key, key_len);
    memcpy(p + S_KEY_FIXED + key_len, value, value_len);
    e->out->size += len;
    e->keys++;
}

int qkv_snap_encode(qkv_store_t *store, const qkv_sessions_t *sessions,
                    qkv_snap_meta_t *meta, qkv_buf_t *out) {
    out->size = 0;
    if (qkv_buf_reserve(out, S_HEAD_BYTES) != 0)
        return -1;
    out->size = S_HEAD_BYTES;
    s_enc_t e = {out, 0, false};
    uint64_t cursor = 0;
    do {
        qkv_store_scan(store, &cursor, 4096, SIZE_MAX, s_visit, &e);
    } while (cursor && !e.failed);
    if (e.failed || qkv_sessions_save(sessions, out) != 0 ||
        qkv_buf_reserve(out, 4) != 0)
        return -1;
    meta->keys = e.keys;
    uint8_t *h = (uint8_t *)out->data;
    memcpy(h, S_MAGIC, 8);
    qkv_put_le32(h + 8, S_VERSION);
    qkv_put_le32(h + 12, 0);
    qkv_put_le64(h + 16, meta->cluster_id);
    qkv_put_le64(h + 24, meta->index);
    qkv_put_le64(h + 32, meta->term);
    qkv_put_le64(h + 40, meta->keys);
    qkv_put_le32((uint8_t *)out->data + out->size,
                 qkv_crc32c(0, out->data, out->size));
    out->size += 4;
    return 0;
}

int qkv_snap_check(const void *data, size_t size, qkv_snap_meta_t *meta,
                   char *why, size_t ws) {
    const uint8_t *p = data;
    if (size < S_HEAD_BYTES + 4 || memcmp(p, S_MAGIC, 8) != 0) {
        snprintf(why, ws, "not a qkv snapshot");
        return -1;
    }
    if (qkv_get_le32(p + 8) != S_VERSION) {
        snprintf(why, ws, "snapshot format version %u; this qkv reads %d",
                 qkv_get_le32(p + 8), S_VERSION);
        return -1;
    }
    if (qkv_crc32c(0, p, size - 4) != qkv_get_le32(p + size - 4)) {
        snprintf(why, ws, "the snapshot's checksum does not match");
        return -1;
    }
    meta->cluster_id = qkv_get_le64(p + 16);
    meta->index = qkv_get_le64(p + 24);
    meta->term = qkv_get_le64(p + 32);
    meta->keys = qkv_get_le64(p + 40);
    return 0;
}

int qkv_snap_apply(const void *data, size_t size, qkv_store_t *store,
                   qkv_sessions_t *sessions, char *why, size_t ws) {
    qkv_snap_meta_t meta;
    if (qkv_snap_check(data, size, &meta, why, ws) != 0)
        return -1;
    const uint8_t *p = (const uint8_t *)data + S_HEAD_BYTES;
    const uint8_t *end = (const uint8_t *)data + size - 4;
    int rc = 0;
    qkv_store_clear(store);
    qkv_store_write_begin(store);
    for (uint64_t k = 0; k < meta.keys && rc == 0; k++) {
        if (end - p < S_KEY_FIXED) {
            rc = -1;
            break;
        }
        uint32_t kl = qkv_get_le32(p), vl = qkv_get_le32(p + 4);
        uint64_t seq = qkv_get_le64(p + 8), index = qkv_get_le64(p + 16);
        if ((uint64_t)(end - p) - S_KEY_FIXED < (uint64_t)kl + vl ||
            index > meta.index) {
            rc = -1;
            break;
        }
        const char *key = (const char *)p + S_KEY_FIXED;
        qkv_entry_t *e = qkv_entry_new(QKV_OP_PUT, key, kl, key + kl, vl);
        if (!e) {
            snprintf(why, ws, "out of memory loading the snapshot");
            qkv_store_write_end(store);
            return -1;
        }
        e->index = index;
        rc = qkv_store_load_locked(store, e, seq);
        free(e);
        p += S_KEY_FIXED + kl + vl;
    }
    if (rc == 0)
        qkv_store_skip_locked(store, meta.index);
    qkv_store_write_end(store);
    size_t used = 0;
    if (rc != 0 || qkv_sessions_load(sessions, p, (size_t)(end - p), &used) ||
        used != (size_t)(end - p)) {
        snprintf(why, ws,
                 "the snapshot's content does not add up (or memory "
                 "ran out)");
        return -1;
    }
    return 0;
}

/*  =====================================================================
    Files */

static bool s_snap_name(const char *name, uint64_t *index) {
    return strlen(name) == 5 + 16 + 5 && strncmp(name, "snap-", 5) == 0 &&
           strcmp(name + 21, ".snap") == 0 &&
           qkv_parse_hex16(name + 5, index) == 0;
}

/* The snapshot indexes in dir, newest first (at most max); deletes
   leftover temporary files. */
static size_t s_list(const char *dir, uint64_t *found, size_t max) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t index;
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0 &&
            strncmp(de->d_name, "snap-", 5) == 0) {
            char path[4400];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path); /* a save a crash interrupted */
            continue;
        }
        if (!s_snap_name(de->d_name, &index))
            continue;
        /* full: replace the oldest kept only when this one is newer */
        if (n == max && found[max - 1] > index)
            continue;
        size_t i = n < max ? n++ : max - 1;
        found[i] = index;
        for (; i > 0 && found[i - 1] < found[i]; i--) {
            uint64_t t = found[i];
            found[i] = found[i - 1];
            found[i - 1] = t;
        }
    }
    closedir(d);
    return n;
}

static void s_path(char *path, size_t size, const char *dir, uint64_t index,
                   const char *suffix) {
    snprintf(path, size, "%s/snap-%016" PRIx64 ".snap%s", dir, index, suffix);
}

static int s_read_all(const char *path, qkv_buf_t *out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    int rc = fstat(fd, &st);
    out->size = 0;
    if (rc == 0 && qkv_buf_reserve(out, (size_t)st.st_size + 1) != 0)
        rc = -1;
    while (rc == 0 && out->size < (size_t)st.st_size) {
        ssize_t n =
            read(fd, out->data + out->size, (size_t)st.st_size - out->size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = -1;
        else
            out->size += (size_t)n;
    }
    close(fd);
    return rc;
}

int qkv_snap_load_newest(const char *dir, qkv_store_t *store,
                         qkv_sessions_t *sessions, qkv_snap_meta_t *meta,
                         uint64_t *bytes, char *err, size_t es) {
    memset(meta, 0, sizeof(*meta));
    *bytes = 0;
    uint64_t found[4];
    size_t n = s_list(dir, found, 4);
    qkv_buf_t image = {0};
    for (size_t i = 0; i < n; i++) {
        char path[4400], why[200];
        s_path(path, sizeof(path), dir, found[i], "");
        if (s_read_all(path, &image) != 0) {
            qkv_warn("%s: cannot read: %s; trying an older snapshot", path,
                     strerror(errno));
            continue;
        }
        bool damaged =
            qkv_snap_check(image.data, image.size, meta, why, sizeof(why)) != 0;
        if (damaged || meta->index != found[i]) {
            qkv_warn("%s: %s; trying an older snapshot", path,
                     damaged ? why : "index differs from its name");
            memset(meta, 0, sizeof(*meta));
            continue;
        }
        if (qkv_snap_apply(image.data, image.size, store, sessions, why,
                           sizeof(why)) != 0) {
            snprintf(err, es, "%s: %s", path, why);
            qkv_buf_free(&image);
            return -1;
        }
        *bytes = image.size;
        qkv_buf_free(&image);
        return 0;
    }
    qkv_buf_free(&image);
    return 0;
}

/*  =====================================================================
    The saver thread */

struct qkv_snap_saver_t {
    char dir[4096];
    bool sync;
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int event_fd;
    bool stop;
    bool busy;       /* a save is handed over or under way */
    qkv_buf_t image; /* the one to save */
    pid_t child;     /* a forked child writing the snapshot; 0 none */
    uint64_t index;  /* its index */
    uint64_t done;   /* index of the last save that ended well; 0 none */
    uint64_t bytes;  /* its size */
    char why[256];   /* why the last one failed */
    /* loading a snapshot file for a follower */
    uint64_t load_index;   /* the one asked for; 0 none */
    qkv_buf_t loaded;      /* its bytes, once read */
    uint64_t loaded_index; /* their index; 0 none ready */
    bool load_failed;      /* reading failed (a newer snapshot replaced
                              the file, say): ask again */
};

static int s_write_file(qkv_snap_saver_t *self, const qkv_buf_t *image,
                        uint64_t index, char *why, size_t ws) {
    char tmp[4400], path[4400];
    s_path(tmp, sizeof(tmp), self->dir, index, ".tmp");
    s_path(path, sizeof(path), self->dir, index, "");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(why, ws, "cannot create %.200s: %s", tmp, strerror(errno));
        return -1;
    }
    if (qkv_write_all(fd, image->data, image->size) != 0) {
        snprintf(why, ws, "cannot write %.200s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if ((self->sync && fsync(fd) != 0) || close(fd) != 0) {
        snprintf(why, ws, "cannot fsync %.200s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(why, ws, "cannot rename %.200s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    int dfd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || (self->sync && fsync(dfd) != 0)) {
        snprintf(why, ws, "cannot fsync %.200s: %s", self->dir,
                 strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    close(dfd);
    /* older snapshots go: the log after this one is kept */
    uint64_t found[8];
    size_t n = s_list(self->dir, found, 8);
    for (size_t i = 0; i < n; i++) {
        if (found[i] >= index)
            continue;
        s_path(path, sizeof(path), self->dir, found[i], "");
        unlink(path);
    }
    return 0;
}

static void *s_saver(void *arg) {
    qkv_snap_saver_t *self = arg;
    pthread_mutex_lock(&self->mutex);
    for (;;) {
        while (!self->stop && !self->load_index &&
               !(self->busy && (self->image.size || self->child)))
            pthread_cond_wait(&self->cond, &self->mutex);
        if (self->load_index && !self->stop) {
            /* a follower needs the newest snapshot: read it here, off
               the actor */
            uint64_t index = self->load_index;
            pthread_mutex_unlock(&self->mutex);
            char path[4400];
            s_path(path, sizeof(path), self->dir, index, "");
            qkv_buf_t image = {0};
            int rc = s_read_all(path, &image);
            pthread_mutex_lock(&self->mutex);
            self->load_index = 0;
            qkv_buf_free(&self->loaded);
            if (rc == 0) {
                self->loaded = image;
                self->loaded_index = index;
            } else {
                qkv_buf_free(&image);
                self->load_failed = true;
            }
            uint64_t one = 1;
            ssize_t w = write(self->event_fd, &one, sizeof(one));
            (void)w;
            continue;
        }
        if (self->busy && self->child) {
            /* a child writes it: wait for it here, off the actor */
            pid_t child = self->child;
            uint64_t index = self->index;
            pthread_mutex_unlock(&self->mutex);
            int status = 0;
            while (waitpid(child, &status, 0) < 0 && errno == EINTR)
                ;
            char path[4400];
            s_path(path, sizeof(path), self->dir, index, "");
            struct stat st;
            bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                      stat(path, &st) == 0;
            pthread_mutex_lock(&self->mutex);
            if (ok) {
                self->done = index;
                self->bytes = (uint64_t)st.st_size;
            } else {
                snprintf(self->why, sizeof(self->why),
                         "the snapshot process for %llu failed (status %d)",
                         (unsigned long long)index, status);
            }
            self->child = 0;
            self->busy = false;
            uint64_t one = 1;
            ssize_t w = write(self->event_fd, &one, sizeof(one));
            (void)w;
            continue;
        }
        if (!(self->busy && self->image.size))
            break;
        qkv_buf_t image = self->image;
        memset(&self->image, 0, sizeof(self->image));
        uint64_t index = self->index;
        pthread_mutex_unlock(&self->mutex);
        char why[256] = "";
        int rc = s_write_file(self, &image, index, why, sizeof(why));
        size_t size = image.size;
        qkv_buf_free(&image);
        pthread_mutex_lock(&self->mutex);
        if (rc == 0) {
            self->done = index;
            self->bytes = size;
        } else {
            snprintf(self->why, sizeof(self->why), "%s", why);
        }
        self->busy = false;
        uint64_t one = 1;
        ssize_t w = write(self->event_fd, &one, sizeof(one));
        (void)w;
    }
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

qkv_snap_saver_t *qkv_snap_saver_new(const char *dir, bool sync) {
    qkv_snap_saver_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    snprintf(self->dir, sizeof(self->dir), "%s", dir);
    self->sync = sync;
    pthread_mutex_init(&self->mutex, NULL);
    pthread_cond_init(&self->cond, NULL);
    self->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->event_fd < 0 ||
        pthread_create(&self->thread, NULL, s_saver, self) != 0) {
        if (self->event_fd >= 0)
            close(self->event_fd);
        free(self);
        return NULL;
    }
    return self;
}

void qkv_snap_saver_destroy(qkv_snap_saver_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_snap_saver_t *self = *self_p;
    pthread_mutex_lock(&self->mutex);
    if (self->child)
        kill(self->child, SIGKILL); /* its .tmp file goes at the next start */
    self->stop = true;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    pthread_join(self->thread, NULL);
    qkv_buf_free(&self->image);
    qkv_buf_free(&self->loaded);
    close(self->event_fd);
    pthread_mutex_destroy(&self->mutex);
    pthread_cond_destroy(&self->cond);
    free(self);
    *self_p = NULL;
}

int qkv_snap_saver_fd(const qkv_snap_saver_t *self) {
    return self->event_fd;
}

bool qkv_snap_saver_busy(qkv_snap_saver_t *self) {
    pthread_mutex_lock(&self->mutex);
    bool busy = self->busy;
    pthread_mutex_unlock(&self->mutex);
    return busy;
}

bool qkv_snap_saver_save(qkv_snap_saver_t *self, qkv_buf_t *image,
                         uint64_t index) {
    pthread_mutex_lock(&self->mutex);
    bool taken = !self->busy && image->size;
    if (taken) {
        self->busy = true;
        self->image = *image;
        self->index = index;
        memset(image, 0, sizeof(*image));
        pthread_cond_signal(&self->cond);
    }
    pthread_mutex_unlock(&self->mutex);
    return taken;
}

void qkv_snap_saver_load(qkv_snap_saver_t *self, uint64_t index) {
    pthread_mutex_lock(&self->mutex);
    self->load_index = index;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mutex);
}

int qkv_snap_saver_loaded(qkv_snap_saver_t *self, qkv_buf_t *image) {
    pthread_mutex_lock(&self->mutex);
    int rc = self->load_failed ? -1 : self->loaded_index ? 1 : 0;
    if (rc > 0) {
        qkv_buf_free(image);
        *image = self->loaded;
        memset(&self->loaded, 0, sizeof(self->loaded));
        self->loaded_index = 0;
    }
    self->load_failed = false;
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

bool qkv_snap_saver_fork(qkv_snap_saver_t *self, qkv_store_t *store,
                         const qkv_sessions_t *sessions,
                         const qkv_snap_meta_t *meta) {
    pthread_mutex_lock(&self->mutex);
    bool busy = self->busy;
    pthread_mutex_unlock(&self->mutex);
    if (busy)
        return false;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        /* The child: a copy of the state as of the fork, written while
           the node goes on. Only this thread exists here; it encodes,
           writes, fsyncs and leaves without running exit handlers. It
           dies with the node (and leaves at once if the node is already
           gone), and keeps none of the node's descriptors: not the data
           directory's LOCK (flock: shared with the child), nor a
           listening socket, so a node killed mid-snapshot can start again
           at once. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        close_range(3, ~0U, 0);
        /* the node's threads come first: on a busy machine the snapshot
           takes longer, writes do not wait for it */
        (void)setpriority(PRIO_PROCESS, 0, 19);
        qkv_snap_meta_t m = *meta;
        qkv_buf_t image = {0};
        char why[256];
        int rc = qkv_snap_encode(store, sessions, &m, &image);
        if (rc == 0)
            rc = s_write_file(self, &image, m.index, why, sizeof(why));
        _exit(rc == 0 ? 0 : 1);
    }
    pthread_mutex_lock(&self->mutex);
    self->busy = true;
    self->child = pid;
    self->index = meta->index;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    return true;
}

uint64_t qkv_snap_saver_done(qkv_snap_saver_t *self, uint64_t *bytes, char *why,
                             size_t ws) {
    uint64_t count;
    ssize_t n = read(self->event_fd, &count, sizeof(count));
    (void)n;
    pthread_mutex_lock(&self->mutex);
    uint64_t done = self->done;
    *bytes = self->bytes;
    snprintf(why, ws, "%s", self->why);
    self->done = 0;
    self->why[0] = '\0';
    pthread_mutex_unlock(&self->mutex);
    return done;
}

void qkv_snap_remove_all(const char *dir) {
    uint64_t found[8];
    size_t n;
    while ((n = s_list(dir, found, 8)) > 0) {
        for (size_t i = 0; i < n; i++) {
            char path[4400];
            s_path(path, sizeof(path), dir, found[i], "");
            if (unlink(path) != 0)
                return;
        }
    }
}
