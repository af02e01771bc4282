"""The tutorials' models, written by hand in the Keras functional API (../shared/seeds/).

Each function returns the model its tutorial builds, with the layer names the spec
uses where the tutorial leaves names to Keras. Used by the exactness tests and by
the build-speed benchmark.
"""

from __future__ import annotations

from graphspec.backend import keras_module

keras = keras_module()
layers = keras.layers
Input = keras.Input
Model = keras.Model


def sine():
    x0 = Input(shape=(1,), name="x")
    x1 = layers.Dense(32, kernel_initializer="uniform", activation="sigmoid", name="hidden_1")(x0)
    x2 = layers.Dense(32, kernel_initializer="uniform", activation="sigmoid", name="hidden")(x1)
    x3 = layers.Dense(1, kernel_initializer="uniform", name="y")(x2)
    return Model(inputs=x0, outputs=x3)


def sine_two_inputs():
    x0_left = Input(shape=(1,), name="x0_left")
    x0_right = Input(shape=(1,), name="x0_right")
    x1_left = layers.Dense(32, kernel_initializer="uniform", activation="sigmoid", name="x1_left")(x0_left)
    x1_right = layers.Dense(20, kernel_initializer="uniform", activation="sigmoid", name="x1_right")(x0_right)
    x2 = layers.concatenate([x1_left, x1_right], name="x2")
    x3 = layers.Dense(32, kernel_initializer="uniform", activation="sigmoid", name="x3")(x2)
    x4 = layers.Dense(1, kernel_initializer="uniform", name="x4")(x3)
    return Model(inputs=[x0_left, x0_right], outputs=x4)


def sin_exp_two_outputs():
    x0 = Input(shape=(1,), name="x0")
    x1 = layers.Dense(20, kernel_initializer="uniform", activation="sigmoid", name="trunk_1")(x0)
    x2 = layers.Dense(20, kernel_initializer="uniform", activation="sigmoid", name="trunk")(x1)
    x3_left = layers.Dense(20, kernel_initializer="uniform", activation="sigmoid", name="x3_left")(x2)
    x3_right = layers.Dense(30, kernel_initializer="uniform", activation="sigmoid", name="x3_right")(x2)
    x4_left = layers.Dense(20, kernel_initializer="uniform", activation="sigmoid", name="x4_left")(x3_left)
    x4_right = layers.Dense(30, kernel_initializer="uniform", activation="sigmoid", name="x4_right")(x3_right)
    x5_left = layers.Dense(1, kernel_initializer="uniform", name="sin")(x4_left)
    x5_right = layers.Dense(1, kernel_initializer="uniform", name="exp")(x4_right)
    return Model(inputs=x0, outputs=[x5_left, x5_right])


def two_stacks():
    width = 8
    input1 = layers.Input((width,), name="input1")
    l1 = layers.Dense(20, name="stack1_1")(input1)
    l2 = layers.Dense(10, name="stack1")(l1)
    input2 = layers.Input((width,), name="input2")
    l21 = layers.Dense(20, name="stack2_1")(input2)
    l22 = layers.Dense(10, name="stack2")(l21)
    common = layers.concatenate([l2, l22], name="common")
    interm = layers.Dense(10, name="interm")(common)
    output = layers.Dense(1, name="output")(interm)
    return Model(inputs=[input1, input2], outputs=output)


def mnist_mlp():
    inputs = Input(shape=(784,), name="pixels")
    x = layers.Dense(64, activation="relu", name="hidden_1")(inputs)
    x = layers.Dense(64, activation="relu", name="hidden")(x)
    predictions = layers.Dense(10, activation="softmax", name="predictions")(x)
    return Model(inputs=inputs, outputs=predictions)


def headline():
    main_input = Input(shape=(100,), dtype="int32", name="main_input")
    x = layers.Embedding(input_dim=10000, output_dim=512, name="embedding")(main_input)
    lstm_out = layers.LSTM(32, name="lstm_out")(x)
    auxiliary_output = layers.Dense(1, activation="sigmoid", name="aux_output")(lstm_out)
    auxiliary_input = Input(shape=(5,), name="aux_input")
    x = layers.concatenate([lstm_out, auxiliary_input], name="merged")
    x = layers.Dense(64, activation="relu", name="deep_1")(x)
    x = layers.Dense(64, activation="relu", name="deep_2")(x)
    x = layers.Dense(64, activation="relu", name="deep")(x)
    main_output = layers.Dense(1, activation="sigmoid", name="main_output")(x)
    return Model(inputs=[main_input, auxiliary_input], outputs=[main_output, auxiliary_output])


def shared_lstm():
    tweet_a = Input(shape=(280, 256), name="tweet_a")
    tweet_b = Input(shape=(280, 256), name="tweet_b")
    shared = layers.LSTM(64, name="shared_lstm")
    encoded_a = shared(tweet_a)
    encoded_b = shared(tweet_b)
    merged_vector = layers.concatenate([encoded_a, encoded_b], axis=-1, name="merged_vector")
    predictions = layers.Dense(1, activation="sigmoid", name="predictions")(merged_vector)
    return Model(inputs=[tweet_a, tweet_b], outputs=predictions)


def shared_vision():
    digit_input = Input(shape=(27, 27, 1), name="digit_input")
    x = layers.Conv2D(64, (3, 3), name="features_1")(digit_input)
    x = layers.Conv2D(64, (3, 3), name="features_2")(x)
    x = layers.MaxPooling2D((2, 2), name="features_3")(x)
    out = layers.Flatten(name="features")(x)
    vision_model = Model(digit_input, out, name="vision_model")
    digit_a = Input(shape=(27, 27, 1), name="digit_a")
    digit_b = Input(shape=(27, 27, 1), name="digit_b")
    out_a = vision_model(digit_a)
    out_b = vision_model(digit_b)
    concatenated = layers.concatenate([out_a, out_b], name="concatenated")
    out = layers.Dense(1, activation="sigmoid", name="out")(concatenated)
    return Model([digit_a, digit_b], out)


def inception_module():
    input_img = Input(shape=(256, 256, 3), name="input_img")
    tower_1 = layers.Conv2D(64, (1, 1), padding="same", activation="relu", name="output_tower_1_1")(input_img)
    tower_1 = layers.Conv2D(64, (3, 3), padding="same", activation="relu", name="output_tower_1")(tower_1)
    tower_2 = layers.Conv2D(64, (1, 1), padding="same", activation="relu", name="output_tower_2_1")(input_img)
    tower_2 = layers.Conv2D(64, (5, 5), padding="same", activation="relu", name="output_tower_2")(tower_2)
    tower_3 = layers.MaxPooling2D((3, 3), strides=(1, 1), padding="same", name="output_tower_3_1")(input_img)
    tower_3 = layers.Conv2D(64, (1, 1), padding="same", activation="relu", name="output_tower_3")(tower_3)
    output = layers.concatenate([tower_1, tower_2, tower_3], axis=1, name="output")
    return Model(input_img, output)


def residual():
    x = Input(shape=(256, 256, 3), name="x")
    y = layers.Conv2D(3, (3, 3), padding="same", name="y")(x)
    z = layers.add([x, y], name="z")
    return Model(x, z)


def _vision_model():
    model = keras.Sequential(name="vision_model")
    model.add(Input(shape=(224, 224, 3)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu", padding="same"))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(128, (3, 3), activation="relu", padding="same"))
    model.add(layers.Conv2D(128, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(256, (3, 3), activation="relu", padding="same"))
    model.add(layers.Conv2D(256, (3, 3), activation="relu"))
    model.add(layers.Conv2D(256, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Flatten())
    return model


def vqa():
    vision_model = _vision_model()
    image_input = Input(shape=(224, 224, 3), name="image_input")
    encoded_image = vision_model(image_input)
    question_input = Input(shape=(100,), dtype="int32", name="question_input")
    embedded_question = layers.Embedding(input_dim=10000, output_dim=256, name="embedded_question")(question_input)
    encoded_question = layers.LSTM(256, name="encoded_question")(embedded_question)
    merged = layers.concatenate([encoded_question, encoded_image], name="merged")
    output = layers.Dense(1000, activation="softmax", name="output")(merged)
    return Model(inputs=[image_input, question_input], outputs=output)


def video_qa():
    vision_model = _vision_model()
    question_input = Input(shape=(100,), dtype="int32", name="question_input")
    embedded_question = layers.Embedding(input_dim=10000, output_dim=256, name="embedded_question")(question_input)
    encoded_question = layers.LSTM(256, name="encoded_question")(embedded_question)
    video_input = Input(shape=(100, 224, 224, 3), name="video_input")
    encoded_frame_sequence = layers.TimeDistributed(vision_model, name="encoded_frames")(video_input)
    encoded_video = layers.LSTM(256, name="encoded_video")(encoded_frame_sequence)
    question_encoder = Model(inputs=question_input, outputs=encoded_question, name="question_encoder")
    video_question_input = Input(shape=(100,), dtype="int32", name="video_question_input")
    encoded_video_question = question_encoder(video_question_input)
    merged = layers.concatenate([encoded_video, encoded_video_question], name="merged")
    output = layers.Dense(1000, activation="softmax", name="output")(merged)
    return Model(inputs=[video_input, video_question_input], outputs=output)


def stacked_lstm():
    data_dim, timesteps, num_classes = 16, 8, 10
    sequence = Input(shape=(timesteps, data_dim), name="sequence")
    x = layers.LSTM(32, return_sequences=True, name="encoder_1")(sequence)
    x = layers.LSTM(32, return_sequences=True, name="encoder_2")(x)
    x = layers.LSTM(32, name="encoder")(x)
    classes = layers.Dense(num_classes, activation="softmax", name="classes")(x)
    return Model(sequence, classes)


def stateful_lstm():
    data_dim, timesteps, num_classes, batch_size = 16, 8, 10, 32
    sequence = Input(shape=(timesteps, data_dim), batch_size=batch_size, name="sequence")
    x = layers.LSTM(32, return_sequences=True, stateful=True, name="encoder_1")(sequence)
    x = layers.LSTM(32, return_sequences=True, stateful=True, name="encoder_2")(x)
    x = layers.LSTM(32, stateful=True, name="encoder")(x)
    classes = layers.Dense(num_classes, activation="softmax", name="classes")(x)
    return Model(sequence, classes)


def _transformer_encoder(x, prefix: str, width: int, heads: int, ff: int):
    """The keras.io TransformerBlock, inlined with the spec's layer names."""
    attention = layers.MultiHeadAttention(num_heads=heads, key_dim=width // heads, name=f"{prefix}_attention")(x, x)
    attention = layers.Dropout(0.1, name=f"{prefix}_attention_dropout")(attention)
    out1 = layers.LayerNormalization(epsilon=1e-6, name=f"{prefix}_norm_1")(
        layers.add([x, attention], name=f"{prefix}_residual_1"))
    ffn = layers.Dense(ff, activation="relu", name=f"{prefix}_ffn_1")(out1)
    ffn = layers.Dense(width, name=f"{prefix}_ffn")(ffn)
    ffn = layers.Dropout(0.1, name=f"{prefix}_ffn_dropout")(ffn)
    return layers.LayerNormalization(epsilon=1e-6, name=prefix)(
        layers.add([out1, ffn], name=f"{prefix}_residual_2"))


def transformer_classifier():
    tokens = Input(shape=(32,), dtype="int32", name="tokens")
    positions = Input(shape=(32,), dtype="int32", name="positions")
    x = layers.add([layers.Embedding(200, 32, name="token_embedding")(tokens),
                    layers.Embedding(32, 32, name="position_embedding")(positions)], name="embedded")
    x = _transformer_encoder(x, "encoded_1", width=32, heads=2, ff=32)
    x = _transformer_encoder(x, "encoded", width=32, heads=2, ff=32)
    x = layers.GlobalAveragePooling1D(name="pooled")(x)
    x = layers.Dropout(0.1, name="head_1")(x)
    x = layers.Dense(20, activation="relu", name="head_2")(x)
    x = layers.Dropout(0.1, name="head")(x)
    outputs = layers.Dense(2, activation="softmax", name="label")(x)
    return Model(inputs=[tokens, positions], outputs=outputs)


def seq2seq():
    """keras.io lstm_seq2seq's training model, with 10 source and 12 target tokens."""
    encoder_inputs = Input(shape=(None, 10), name="encoder_inputs")
    _, state_h, state_c = layers.LSTM(64, return_state=True, name="encoder")(encoder_inputs)
    decoder_inputs = Input(shape=(None, 12), name="decoder_inputs")
    decoder_lstm = layers.LSTM(64, return_sequences=True, return_state=True, name="decoder_lstm")
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    decoder_outputs = layers.Dense(12, activation="softmax", name="decoder_dense")(decoder_outputs)
    return Model([encoder_inputs, decoder_inputs], decoder_outputs)


def mini_gpt():
    tokens = Input(shape=(16,), dtype="int32", name="tokens")
    positions = Input(shape=(16,), dtype="int32", name="positions")
    x = layers.add([layers.Embedding(32, 64, name="token_embedding")(tokens),
                    layers.Embedding(16, 64, name="position_embedding")(positions)], name="embedded")
    attention = layers.MultiHeadAttention(2, 32, name="attention")(x, x, use_causal_mask=True)
    attention = layers.Dropout(0.1, name="attention_dropout")(attention)
    out1 = layers.LayerNormalization(epsilon=1e-6, name="norm_1")(layers.add([x, attention], name="residual_1"))
    ffn = layers.Dense(128, activation="relu", name="ffn_1")(out1)
    ffn = layers.Dense(64, name="ffn_2")(ffn)
    ffn = layers.Dropout(0.1, name="ffn")(ffn)
    out2 = layers.LayerNormalization(epsilon=1e-6, name="norm_2")(layers.add([out1, ffn], name="residual_2"))
    return Model([tokens, positions], layers.Dense(32, name="next_token")(out2))


def _residual_block(x, prefix: str, filters: int, downsample: bool = False, name: str | None = None):
    def conv(y, name, strides=1, kernel=3):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same" if kernel == 3 else "valid",
                             use_bias=False, name=f"{prefix}_{name}")(y)

    y = conv(x, "conv_a", strides=2 if downsample else 1)
    y = layers.ReLU(name=f"{prefix}_relu_a")(layers.BatchNormalization(name=f"{prefix}_bn_a")(y))
    y = layers.BatchNormalization(name=f"{prefix}_bn_b")(conv(y, "conv_b"))
    if downsample:
        x = layers.BatchNormalization(name=f"{prefix}_shortcut_bn")(conv(x, "shortcut", strides=2, kernel=1))
    return layers.ReLU(name=name or prefix)(layers.add([x, y], name=f"{prefix}_sum"))


def resnet_blocks():
    images = Input(shape=(32, 32, 3), name="images")
    x = layers.Rescaling(1 / 255, name="scaled")(images)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_1")(x)
    x = layers.ReLU(name="stem")(layers.BatchNormalization(name="stem_2")(x))
    x = _residual_block(x, "stage_1_1", 16)
    x = _residual_block(x, "stage_1", 16)
    for stage, filters in (("stage_2", 32), ("stage_3", 64)):
        x = _residual_block(x, f"{stage}_down", filters, downsample=True)
        x = _residual_block(x, f"{stage}_blocks", filters, name=stage)  # the stage block's output
    x = layers.GlobalAveragePooling2D(name="pooled")(x)
    return Model(images, layers.Dense(4, activation="softmax", name="kind")(x))


BUILDERS = {fn.__name__: fn for fn in (
    sine, sine_two_inputs, sin_exp_two_outputs, two_stacks, mnist_mlp, headline, shared_lstm, shared_vision,
    inception_module, residual, vqa, video_qa, stacked_lstm, stateful_lstm, transformer_classifier, seq2seq,
    mini_gpt, resnet_blocks,
)}


def penguins(table: str):
    """The mixed-type table's model as Keras code writes it: the training rows read by hand (the last fifth held
    out), blanks filled with the training rows' means (and 'unknown' for sex), each preprocessing layer adapted on
    its training column and then called. Returns the model and the training rows' inputs."""
    import csv

    import numpy as np

    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows = rows[:len(rows) - round(len(rows) * 0.2)]
    columns = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    means = {c: np.mean([float(r[c]) for r in rows if r[c]]) for c in columns}
    data = {
        "measurements": np.array([[float(r[c]) if r[c] else means[c] for c in columns] for r in rows], "float32"),
        "island": np.array([[r["island"]] for r in rows], object),
        "sex": np.array([[r["sex"] or "unknown"] for r in rows], object),
        "year": np.array([[int(r["year"])] for r in rows], "int64"),
        "note": np.array([r["note"] for r in rows], object),
    }
    keras.utils.set_random_seed(3)
    measurements = Input(shape=(4,), name="measurements")
    island = Input(shape=(1,), dtype="string", name="island")
    sex = Input(shape=(1,), dtype="string", name="sex")
    year = Input(shape=(1,), dtype="int64", name="year")
    note = Input(shape=(), dtype="string", name="note")
    scaled = layers.Normalization(name="scaled")
    scaled.adapt(data["measurements"])
    island_code = layers.StringLookup(output_mode="one_hot", name="island_code")
    island_code.adapt(data["island"])
    sex_code = layers.StringLookup(output_mode="one_hot", name="sex_code")
    sex_code.adapt(data["sex"])
    year_code = layers.IntegerLookup(output_mode="one_hot", name="year_code")
    year_code.adapt(data["year"])
    words = layers.TextVectorization(max_tokens=64, output_mode="multi_hot", name="words")
    words.adapt(data["note"])
    features = layers.concatenate([scaled(measurements), island_code(island), sex_code(sex), year_code(year),
                                   words(note)], name="features")
    hidden = layers.Dense(16, activation="relu", name="hidden")(features)
    species = layers.Dense(3, activation="softmax", name="species")(hidden)
    return Model([measurements, island, sex, year, note], species, name="penguins"), data
