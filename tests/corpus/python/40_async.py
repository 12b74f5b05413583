import asyncio


async def fetch(n):
    await asyncio.sleep(0.01)
    return n * 2


async def main():
    results = await asyncio.gather(*(fetch(i) for i in range(3)))
    print(results)


asyncio.run(main())
