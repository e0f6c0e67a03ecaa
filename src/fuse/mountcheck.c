#include "config.h"

#include "fuse/mountcheck.h"

#include <stdlib.h>
#include <string.h>

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

bool mountcheck_is_mounted(FILE *mountinfo, const char *dir, const char *fstype)
{
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    while (!found && getline(&line, &cap, mountinfo) > 0) {
        /* id parent major:minor root mountpoint options ... - fstype source */
        char *save = NULL, *mp = NULL;
        char *tok = strtok_r(line, " ", &save);
        for (int i = 1; tok && i < 5; i++)
            tok = strtok_r(NULL, " ", &save);
        mp = tok;
        while (tok && strcmp(tok, "-") != 0)
            tok = strtok_r(NULL, " ", &save);
        char *type = tok ? strtok_r(NULL, " ", &save) : NULL;
        if (!mp || !type)
            continue;
        unescape(mp);
        found = strcmp(mp, dir) == 0 && strcmp(type, fstype) == 0;
    }
    free(line);
    return found;
}
