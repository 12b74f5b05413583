import statistics as stats

data = [2.5, 3.1, 4.7, 1.9, 3.3]
print("mean", stats.mean(data))
print("median", stats.median(data))
print("stdev", round(stats.stdev(data), 3))
print(min(data), max(data), sorted(data)[len(data) // 2])
