/*  qkv_key.h - CURVE keys as text (Z85) and the files that hold them.

    A key is 32 bytes; ZeroMQ writes it as 40 characters of Z85. A secret
    key file (qkv keygen) is '#' comment lines and one line with the key;
    it must be readable by its owner only. A public key file is the same
    with the public key and may be read by anyone. libc only: the caller
    decodes with ZeroMQ.
*/
#ifndef QKV_KEY_H
#define QKV_KEY_H

#include <stdbool.h>
#include <stddef.h>

#define QKV_KEY_TEXT 40 /* characters of a key in Z85 */

/* True when s is exactly QKV_KEY_TEXT characters of Z85. */
bool qkv_key_text(const char *s);

/* Reads the key of file path into key (QKV_KEY_TEXT + 1 bytes). With
   secret, refuses a file that group or others may read, or that is not a
   regular file. Returns 0, or -1 with a message naming the file in err
   (never the key). */
int qkv_key_read(const char *path, bool secret, char *key, char *err,
                 size_t err_size);

/* Writes key to a new file path (never replaces one): mode 0600 when
   secret, else 0644, with a comment line first; fsynced. Returns 0, or -1
   with err. */
int qkv_key_write(const char *path, const char *key, bool secret,
                  const char *comment, char *err, size_t err_size);

#endif
