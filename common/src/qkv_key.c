/*  qkv_key.c - CURVE key text and key files (qkv_key.h). */
#include "qkv_key.h"
#include "qkv_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_FILE_MAX 4096 /* a key file is a few lines */

bool qkv_key_text(const char *s) {
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              ".-:+=^!/*?&<>()[]{}@%$#";
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= QKV_KEY_TEXT || !memchr(z85, s[n], sizeof(z85) - 1))
            return false;
    return n == QKV_KEY_TEXT;
}

int qkv_key_read(const char *path, bool secret, char *key, char *err,
                 size_t err_size) {
    size_t n;
    char *text = qkv_read_file(path, S_FILE_MAX, secret, &n, err, err_size);
    if (!text)
        return -1;
    int rc = -1;
    for (char *line = text; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len && line[0] != '#') {
            if (!qkv_key_text(line))
                break;
            memcpy(key, line, QKV_KEY_TEXT + 1);
            rc = 0;
            break;
        }
        line = end ? end + 1 : NULL;
    }
    if (rc != 0)
        snprintf(err, err_size,
                 "%s: no key in it (a line of %d Z85 characters, as qkv "
                 "keygen writes)",
                 path, QKV_KEY_TEXT);
    qkv_free_secret(text, n + 1);
    return rc;
}

int qkv_key_write(const char *path, const char *key, bool secret,
                  const char *comment, char *err, size_t err_size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                  secret ? 0600 : 0644);
    if (fd < 0) {
        snprintf(err, err_size, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    char text[512];
    int len = snprintf(text, sizeof(text), "# %s\n%s\n", comment, key);
    bool ok = len > 0 && (size_t)len < sizeof(text) &&
              write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    if (!ok)
        snprintf(err, err_size, "%s: cannot write: %s", path, strerror(errno));
    close(fd);
    if (!ok)
        unlink(path);
    return ok ? 0 : -1;
}
