"""Medians of micro.sh's log: python docs/cpu/ab8/summarise.py docs/cpu/ab8/micro2.log"""
import collections
import statistics as st
import sys

d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    v, i, a, m, t = line.split()
    d[(v, a, m)].append((int(i), float(t)))
print('| model, mode | old: median (fastest) | new: median (fastest) | new / old, medians | per-pair ratio, median |')
print('| --- | --- | --- | --- | --- |')
for a in ('tiny', 'base'):
    for m in ('fwd', 'masked', 'train'):
        if not d[('old', a, m)]:
            continue
        o = [t for _, t in sorted(d[('old', a, m)])]
        n = [t for _, t in sorted(d[('new', a, m)])]
        print(f'| DyViT-{a[0].upper()} {m} | {st.median(o):.3f} ({min(o):.3f}) | {st.median(n):.3f} ({min(n):.3f}) | '
              f'{st.median(n) / st.median(o):.2f} | {st.median([b / a_ for a_, b in zip(o, n)]):.2f} |')
for v in ('old', 'new'):
    print(v, 'DyViT-B masked/dense, medians:', round(st.median(t for _, t in d[(v, 'base', 'masked')])
                                                   / st.median(t for _, t in d[(v, 'base', 'fwd')]), 3))
