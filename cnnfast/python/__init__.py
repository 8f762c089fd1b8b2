"""TensorFlow's internal `tensorflow.python` paths that tutorials import from (the import
switch turns them into `cnnfast.python...`); each re-exports cnnfast's implementation."""
