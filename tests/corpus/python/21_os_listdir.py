import os

for entry in sorted(os.listdir(".")):
    if os.path.isfile(entry):
        size = os.path.getsize(entry)
        print(f"{entry:30} {size:>8} bytes")
