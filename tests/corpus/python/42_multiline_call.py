result = max(
    [3, 9, 2],
    key=lambda v: -v,
)
print(
    "result:",
    result,
)
