#include "config.h"

#include "meta/macset.h"

#include "meta/xmlsafe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool mac_parse(const char *text, uint8_t out[6])
{
    if (!text || strlen(text) != MAC_TEXT_LEN)
        return false;
    for (int i = 0; i < 6; i++) {
        const char *p = text + 3 * i;
        int hi = hexval(p[0]), lo = hexval(p[1]);
        if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

void mac_format(const uint8_t mac[6], char *out)
{
    snprintf(out, MAC_TEXT_LEN + 1, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
             mac[4], mac[5]);
}

bool mac_set_has(const struct mac_set *set, const uint8_t mac[6])
{
    /* Linear: a store holds hundreds of MACs, and a clone asks a few
     * times per interface. */
    for (size_t i = 0; set && i < set->n; i++)
        if (memcmp(set->macs[i], mac, 6) == 0)
            return true;
    return false;
}

int mac_set_add(struct mac_set *set, const uint8_t mac[6])
{
    if (mac_set_has(set, mac))
        return 0;
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 16;
        void *m = realloc(set->macs, cap * sizeof(*set->macs));
        if (!m)
            return -ENOMEM;
        set->macs = m;
        set->cap = cap;
    }
    memcpy(set->macs[set->n++], mac, 6);
    return 0;
}

void mac_set_free(struct mac_set *set)
{
    free(set->macs);
    memset(set, 0, sizeof(*set));
}

int mac_set_add_domain(struct mac_set *set, xmlNodePtr domain)
{
    for (xmlNodePtr d = domain ? domain->children : NULL; d; d = d->next) {
        if (!xml_is_elem(d, "devices"))
            continue;
        for (xmlNodePtr c = d->children; c; c = c->next) {
            if (!xml_is_elem(c, "interface"))
                continue;
            char *text = xml_attr(xml_child(c, "mac"), "address");
            uint8_t mac[6];
            int r = mac_parse(text, mac) ? mac_set_add(set, mac) : 0;
            free(text);
            if (r < 0)
                return r;
        }
    }
    return 0;
}
