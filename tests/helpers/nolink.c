/* nolink: preloaded into a daemon (t_take_atomic.sh), it makes the store
 * look like a file system without hard links (vfat's answer: EPERM to
 * every link), so that the take's fallback, renames instead of a link,
 * runs on any file system the tests have. */
#include <errno.h>

int link(const char *from, const char *to);
int linkat(int fromfd, const char *from, int tofd, const char *to, int flags);

int link(const char *from, const char *to)
{
    (void)from;
    (void)to;
    errno = EPERM;
    return -1;
}

int linkat(int fromfd, const char *from, int tofd, const char *to, int flags)
{
    (void)fromfd;
    (void)from;
    (void)tofd;
    (void)to;
    (void)flags;
    errno = EPERM;
    return -1;
}
