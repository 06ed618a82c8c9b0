"""Mappings as cache keys (quant.cache_keys): the kept fits and spectra tell 1 from 1.0."""

from napari_sigma.quant.cache_keys import from_typed_items, typed_items


def test_a_key_tells_an_int_from_a_float_and_gives_the_mapping_back():
    ints, floats = {"Fe": 1, "O": 2}, {"Fe": 1.0, "O": 2.0}
    assert ints == floats and typed_items(ints) != typed_items(floats)
    assert hash(typed_items(ints)) is not None
    for mapping in (ints, floats, {}):
        back = from_typed_items(typed_items(mapping))
        assert back == mapping and list(back) == list(mapping)
        assert [type(v) for v in back.values()] == [type(v) for v in mapping.values()]


def test_the_order_of_the_items_is_part_of_the_key():
    assert typed_items({"Fe": 1.0, "O": 2.0}) != typed_items({"O": 2.0, "Fe": 1.0})
