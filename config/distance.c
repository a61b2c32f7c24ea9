/* Edit distance for the "did you mean" of an unknown key (distance.h):
 * one row of the Levenshtein table, bounded, since only distances up to 2
 * are ever suggested. */
#include "distance.h"

#include <string.h>

int cfg_edit_distance(const char *a, const char *b)
{
    int row[64];
    size_t la = strlen(a), lb = strlen(b), i, j;

    if (lb >= sizeof row / sizeof row[0] || (la > lb ? la - lb : lb - la) > 2)
        return 3;
    for (j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}
