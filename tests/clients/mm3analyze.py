"""mm3analyze.py DIR [TAG] -> key=value lines about smtp-sink dumps (one file =
one SMTP transaction), for test-mailman3.sh.

Only transactions whose message carries "X-Harness-Post: TAG-n" count (any
tag when TAG is empty); the others are reported as other_transactions.
duplicates counts (post, recipient) pairs received more than once."""
import collections
import os
import sys

d = sys.argv[1]
want = sys.argv[2] if len(sys.argv) > 2 else ''
tx = rcpts = other_tx = incomplete = 0
last = 0.0
pairs = collections.Counter()
per_post_tx = collections.Counter()
footers = collections.Counter()
list_ids = collections.Counter()
for name in os.listdir(d) if os.path.isdir(d) else []:
    path = os.path.join(d, name)
    post, rl = None, []
    try:
        with open(path, 'rb') as fp:
            data = fp.read()
    except FileNotFoundError:  # smtp-sink removes the file of an aborted transaction
        continue
    lines = data.split(b'\n')
    end = next((i for i, line in enumerate(lines) if line in (b'', b'\r')), len(lines))
    body = b'\n'.join(lines[end:])
    n_list_id = 0
    for line in lines[:end]:
        if line.lower().startswith(b'list-id:'):
            n_list_id += 1
        if line.startswith(b'X-Rcpt-Args:'):
            rl.append(line.split(b':', 1)[1].strip().lower())
        elif line.startswith(b'X-Harness-Post:'):
            post = line.split(b':', 1)[1].strip().decode()
    if post is None or (want and not post.startswith(want + '-')):
        other_tx += 1
        continue
    tx += 1
    rcpts += len(rl)
    per_post_tx[post] += 1
    footers[body.count(b'To unsubscribe send an email to')] += 1
    list_ids[n_list_id] += 1
    for r in rl:
        pairs[(post, r)] += 1
    last = max(last, os.stat(path).st_mtime)
print('posts=%d' % len(per_post_tx))
print('transactions=%d' % tx)
print('recipients=%d' % rcpts)
print('unique_post_rcpt=%d' % len(pairs))
print('duplicates=%d' % sum(c - 1 for c in pairs.values()))
print('other_transactions=%d' % other_tx)
print('last_mtime=%.6f' % last)
print('footers_per_transaction=%s' % ','.join('%dx%d' % (k, v) for k, v in sorted(footers.items())))
print('list_ids_per_transaction=%s' % ','.join('%dx%d' % (k, v) for k, v in sorted(list_ids.items())))
