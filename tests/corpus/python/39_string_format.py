item = "coffee"
price = 3.5
qty = 2
print("%s x%d = %.2f" % (item, qty, price * qty))
print("{} costs {:.2f}".format(item, price))
print(f"{item!r} total={price * qty:6.2f}")
