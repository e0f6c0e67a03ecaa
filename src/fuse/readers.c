/* readers: open images counted by identity (readers.h). A short list:
 * one entry per image open through the mount. */
#include "config.h"

#include "fuse/readers.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>

struct reader {
    dev_t dev;
    ino_t ino;
    unsigned n;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct reader *list;
static size_t count, cap;

void readers_add(int fd, struct reader_key *key)
{
    struct stat st;
    key->held = false;
    if (fstat(fd, &st) < 0)
        return;
    pthread_mutex_lock(&mu);
    size_t i;
    for (i = 0; i < count; i++)
        if (list[i].dev == st.st_dev && list[i].ino == st.st_ino)
            break;
    if (i == count && count == cap) {
        size_t ncap = cap ? 2 * cap : 16;
        struct reader *nl = realloc(list, ncap * sizeof(*nl));
        if (!nl) {
            pthread_mutex_unlock(&mu);
            return;
        }
        list = nl;
        cap = ncap;
    }
    if (i == count)
        list[count++] = (struct reader){ st.st_dev, st.st_ino, 0 };
    list[i].n++;
    pthread_mutex_unlock(&mu);
    key->dev = st.st_dev;
    key->ino = st.st_ino;
    key->held = true;
}

void readers_drop(struct reader_key *key)
{
    if (!key->held)
        return;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < count; i++)
        if (list[i].dev == key->dev && list[i].ino == key->ino) {
            if (--list[i].n == 0)
                list[i] = list[--count];
            break;
        }
    pthread_mutex_unlock(&mu);
    key->held = false;
}

bool readers_of_path(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return false;
    bool hit = false;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < count && !hit; i++)
        hit = list[i].dev == st.st_dev && list[i].ino == st.st_ino;
    pthread_mutex_unlock(&mu);
    return hit;
}
