"""The main job: the tf.keras tutorials' Fashion-MNIST CNN, trained by cnnfast.

    python examples/train_fashion_mnist.py            # 5 epochs, batch 32, Adam
    python examples/train_fashion_mnist.py --epochs 1 --limit 6000   # a quick look

Conv2D 32 3x3 same relu -> MaxPool 2 -> Conv2D 64 3x3 same relu -> MaxPool 2 -> Flatten ->
Dense 128 relu -> Dense 10 softmax; Adam; sparse categorical cross-entropy.
"""
import argparse
import time

import cnnfast as cf
from cnnfast import layers


def build_model():
    return cf.Sequential([
        layers.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="native threads (default: all)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    args = p.parse_args(argv)

    if args.threads:
        cf.set_num_threads(args.threads)
    cf.utils.set_random_seed(args.seed)
    info = cf.build_info()
    print(f"cnnfast {info['version']}: {info['compiler']}, OpenMP {info['openmp']}, "
          f"ISA {info['isa']}, {info['num_threads']} threads")

    (x_train, y_train), (x_test, y_test) = cf.datasets.fashion_mnist.load_data()
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255.0

    model = build_model()
    model.summary()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              verbose=args.verbose)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    eval_s = time.perf_counter() - t1

    images = len(x_train) * args.epochs
    print(f"Test accuracy: {test_acc:.4f}  (loss {test_loss:.4f})")
    print(f"Training wall time: {train_s:.1f} s for {args.epochs} epochs "
          f"({images / train_s:,.0f} images/s); evaluation {eval_s:.2f} s")
    return test_acc


if __name__ == "__main__":
    main()
