count = 0
while count < 5:
    print("count is", count)
    count += 1
else:
    print("finished")
