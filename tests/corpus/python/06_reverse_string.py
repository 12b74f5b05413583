s = "hello world"
print(s[::-1])
