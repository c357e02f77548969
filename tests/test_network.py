"""Street-network readers: hand-made OSM files and line layers with known answers."""

from __future__ import annotations

import bz2
import socket

import geopandas as gpd
import networkx as nx
import numpy as np
import osmium
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, MultiLineString, Point

from carecircle.layers import network as nw
from carecircle.errors import InputError
from carecircle.layers.lines import read_lines
from carecircle.layers.online import download_bbox, download_place, network_from_graph
from carecircle.layers.osm import read_osm

GEOD = pyproj.Geod(ellps="WGS84")
# A transverse Mercator centred on the test area (scale 1 at its centre): planar lengths
# there equal geodesic lengths to well under a millimetre over a kilometre.
LOCAL_TM = "+proj=tmerc +lon_0=116.405 +lat_0=39.905 +k=1 +datum=WGS84 +units=m"

# node id -> (lon, lat); bounds 116.400–116.410 E, 39.900–39.910 N
NODES = {
    1: (116.401, 39.901),
    2: (116.405, 39.901),  # crossing of ways 10 and 11
    3: (116.409, 39.901),
    4: (116.405, 39.905),
    5: (116.405, 39.897),  # south of the bounds: way 11 is clipped at 39.900
    6: (116.403, 39.903),  # interior vertex of way 19 only
    7: (116.420, 39.920),  # way 16 lies wholly outside the bounds
    8: (116.430, 39.920),
    9: (116.409, 39.901),  # duplicate of node 3 (same location, other id)
    10: (116.409, 39.907),
    11: (116.407, 39.9005),  # way 18 is a bridge over way 10 without a shared node
    12: (116.407, 39.904),
}
WAYS = {
    10: ([1, 2, 3], {"highway": "residential", "oneway": "yes"}),
    11: ([4, 2, 5], {"highway": "footway"}),
    12: ([1, 4], {"highway": "motorway"}),
    13: ([3, 4], {"highway": "service", "access": "private"}),
    14: ([1, 6], {"highway": "footway", "foot": "no"}),
    15: ([1, 6, 4, 1], {"highway": "pedestrian", "area": "yes"}),
    16: ([7, 8], {"highway": "residential"}),
    17: ([9, 10], {"highway": "path"}),
    18: ([11, 12], {"highway": "residential", "bridge": "yes", "layer": "1"}),
    19: ([1, 6, 4], {"highway": "living_street"}),
    20: ([4, 12], {"building": "yes"}),  # not a highway: not read
}
BOUNDARY = (116.405, 39.900)  # where way 11 leaves the bounds


def osm_xml(nodes=NODES, ways=WAYS, bounds=(116.400, 39.900, 116.410, 39.910)) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    if bounds is not None:
        lines.append(
            f'<bounds minlon="{bounds[0]}" minlat="{bounds[1]}" maxlon="{bounds[2]}" maxlat="{bounds[3]}"/>'
        )
    for i, (lon, lat) in sorted(nodes.items()):
        lines.append(f'<node id="{i}" version="1" lat="{lat}" lon="{lon}"/>')
    for i, (refs, tags) in sorted(ways.items()):
        lines.append(f'<way id="{i}" version="1">')
        lines += [f'<nd ref="{r}"/>' for r in refs]
        lines += [f'<tag k="{k}" v="{v}"/>' for k, v in tags.items()]
        lines.append("</way>")
    lines.append("</osm>")
    return "\n".join(lines)


@pytest.fixture
def osm_file(tmp_path):
    path = tmp_path / "tiny.osm"
    path.write_text(osm_xml(), encoding="utf-8")
    return path


def geodesic(*lonlat) -> float:
    lon, lat = zip(*lonlat)
    return float(GEOD.line_length(lon, lat))


def edge_lonlat(network, crs=None):
    """Edge end points as rounded (lon, lat) pairs, for comparing with the node table."""
    to_ll = pyproj.Transformer.from_crs(network.crs, 4326, always_xy=True)
    lon, lat = to_ll.transform(network.nodes["x"].to_numpy(), network.nodes["y"].to_numpy())
    ll = np.round(np.column_stack([lon, lat]), 6)
    return {
        frozenset({tuple(ll[u]), tuple(ll[v])}): length
        for u, v, length in network.edges[["u", "v", "length_m"]].itertuples(index=False)
    }


def assert_same_network(a, b):
    assert a.stats["nodes"] == b.stats["nodes"] and a.stats["edges"] == b.stats["edges"]
    np.testing.assert_allclose(a.nodes[["x", "y"]].to_numpy(), b.nodes[["x", "y"]].to_numpy())
    for column in ("u", "v", "osm_id", "highway"):
        assert a.edges[column].tolist() == b.edges[column].tolist()
    np.testing.assert_allclose(a.edges["length_m"], b.edges["length_m"])
    assert a.report.rejected["reason"].tolist() == b.report.rejected["reason"].tolist()


# --------------------------------------------------------------------------- OSM


def test_osm_edges_split_at_shared_nodes_with_geodesic_lengths(osm_file):
    net = read_osm(osm_file, target_crs=LOCAL_TM, clip_margin_m=0, pedestrian_areas="none")
    expected = {
        frozenset({NODES[1], NODES[2]}): geodesic(NODES[1], NODES[2]),
        frozenset({NODES[2], NODES[3]}): geodesic(NODES[2], NODES[3]),
        frozenset({NODES[4], NODES[2]}): geodesic(NODES[4], NODES[2]),
        frozenset({NODES[2], BOUNDARY}): geodesic(NODES[2], BOUNDARY),  # clipped at the bounds
        frozenset({NODES[3], NODES[10]}): geodesic(NODES[9], NODES[10]),  # 9 merged into 3
        # the bridge: no node where it crosses way 10
        frozenset({NODES[11], NODES[12]}): geodesic(NODES[11], NODES[12]),
        frozenset({NODES[1], NODES[4]}): geodesic(NODES[1], NODES[6], NODES[4]),  # keeps its interior vertex
    }
    got = edge_lonlat(net)
    assert set(got) == set(expected)
    for key, length in expected.items():
        assert got[key] == pytest.approx(length, abs=1e-3)
    assert net.stats["nodes"] == 8 and net.stats["edges"] == 7
    assert net.stats["components"] == 2 and net.stats["largest_component_nodes"] == 6
    assert net.stats["dangles"] == 4  # boundary cut, node 10, both bridge ends
    assert net.stats["merged_duplicate_nodes"] == 1
    assert net.stats["clipped_edges"] == 2  # way 11 trimmed, way 16 dropped


def test_osm_contract_columns_and_geometry_direction(osm_file):
    net = read_osm(osm_file)
    assert net.crs.to_epsg() == 32650  # UTM zone of the bounds centre
    assert isinstance(net.nodes.index, __import__("pandas").RangeIndex)
    assert list(net.nodes.columns) == ["x", "y", "geometry"]
    assert {"u", "v", "length_m", "highway", "geometry", "osm_id"} <= set(net.edges.columns)
    geoms = net.edges.geometry.to_numpy()
    start = shapely.get_coordinates(shapely.get_point(geoms, 0))
    end = shapely.get_coordinates(shapely.get_point(geoms, -1))
    np.testing.assert_allclose(start, net.nodes.loc[net.edges["u"], ["x", "y"]].to_numpy())
    np.testing.assert_allclose(end, net.nodes.loc[net.edges["v"], ["x", "y"]].to_numpy())
    np.testing.assert_allclose(net.edges["length_m"], shapely.length(geoms))
    node_xy = net.nodes[["x", "y"]].to_numpy()
    np.testing.assert_allclose(node_xy, shapely.get_coordinates(net.nodes.geometry.to_numpy()))
    # UTM 50N at 116.4° E has scale ≈ 0.99963: lengths agree with geodesics to 0.1 %
    assert net.edges["length_m"].sum() == pytest.approx(
        read_osm(osm_file, target_crs=LOCAL_TM).edges["length_m"].sum(), rel=1e-3
    )
    assert set(net.edges.loc[net.edges["osm_id"] == 10, "highway"]) == {"residential"}


def test_osm_excluded_ways_reported_with_reasons(osm_file):
    net = read_osm(osm_file, clip_margin_m=0, pedestrian_areas="none")
    rejected = net.report.rejected.set_index("osm_id")["reason"].to_dict()
    assert rejected == {
        12: "highway=motorway",
        13: "access=private",
        14: "foot=no",
        15: "area=yes",
        16: "outside bounds",
    }
    assert net.stats["excluded_by_reason"] == {
        "highway=motorway": 1, "access=private": 1, "foot=no": 1, "area=yes": 1, "outside bounds": 1,
    }
    assert net.report.read == 10  # highway ways; the building is not read
    assert net.report.kept == 5
    assert net.report.read == net.report.kept + len(net.report.rejected)
    rows = net.report.rejected.set_index("osm_id")["row"].to_dict()
    assert rows[12] == 3 and rows[16] == 7  # 1-based position among the highway ways


def test_include_private_keeps_compound_ways(osm_file):
    net = read_osm(osm_file, include_private=True, target_crs=LOCAL_TM)
    assert 13 not in set(net.report.rejected["osm_id"])
    got = edge_lonlat(net)[frozenset({NODES[3], NODES[4]})]
    assert got == pytest.approx(geodesic(NODES[3], NODES[4]), abs=1e-3)


def test_oneway_is_ignored(tmp_path, osm_file):
    ways = {i: (refs, {k: v for k, v in tags.items() if k != "oneway"}) for i, (refs, tags) in WAYS.items()}
    two_way = tmp_path / "two_way.osm"
    two_way.write_text(osm_xml(ways=ways))
    reverse = {**WAYS, 10: (WAYS[10][0], {"highway": "residential", "oneway": "-1"})}
    against = tmp_path / "against.osm"
    against.write_text(osm_xml(ways=reverse))
    base = read_osm(osm_file)
    assert_same_network(base, read_osm(two_way))
    assert_same_network(base, read_osm(against))


def test_no_clip_keeps_ways_beyond_bounds(osm_file):
    net = read_osm(osm_file, target_crs=LOCAL_TM, pedestrian_areas="none")  # the default: no clipping
    got = edge_lonlat(net)
    assert got[frozenset({NODES[2], NODES[5]})] == pytest.approx(geodesic(NODES[2], NODES[5]), abs=1e-3)
    assert got[frozenset({NODES[7], NODES[8]})] == pytest.approx(geodesic(NODES[7], NODES[8]), abs=1e-3)
    assert "outside bounds" not in set(net.report.rejected["reason"])
    assert net.stats["edges"] == 8


def test_bz2_and_pbf_give_the_same_network(tmp_path, osm_file):
    base = read_osm(osm_file)
    packed = tmp_path / "tiny.osm.bz2"
    packed.write_bytes(bz2.compress(osm_file.read_bytes()))
    assert_same_network(base, read_osm(packed))

    pbf = tmp_path / "tiny.osm.pbf"
    reader = osmium.FileProcessor(str(osm_file))
    header = osmium.io.Header()
    header.add_box(reader.header.box())
    writer = osmium.SimpleWriter(str(pbf), header=header)
    for obj in reader:
        writer.add(obj)
    writer.close()
    assert_same_network(base, read_osm(pbf))


def test_missing_nodes_split_the_way_without_bridging_the_gap(tmp_path):
    # node 2 is referenced but absent, as in extracts cut without complete ways
    nodes = {i: NODES[i] for i in (1, 3, 4, 5, 6)}
    ways = {10: ([1, 6, 2, 3, 4], {"highway": "residential"}), 11: ([2, 5], {"highway": "footway"})}
    path = tmp_path / "gap.osm"
    path.write_text(osm_xml(nodes=nodes, ways=ways, bounds=None))
    net = read_osm(path, target_crs=LOCAL_TM)
    got = edge_lonlat(net)
    assert set(got) == {frozenset({NODES[1], NODES[6]}), frozenset({NODES[3], NODES[4]})}
    assert got[frozenset({NODES[3], NODES[4]})] == pytest.approx(geodesic(NODES[3], NODES[4]), abs=1e-3)
    assert net.report.rejected.set_index("osm_id")["reason"].to_dict() == {11: "fewer than 2 located nodes"}


def test_zero_length_ways_and_self_loops(tmp_path):
    nodes = {**NODES, 13: NODES[2], 14: NODES[4]}  # 13 duplicates 2, 14 duplicates 4
    ways = {
        10: ([1, 2, 3], {"highway": "residential"}),
        21: ([2, 13], {"highway": "footway"}),  # both ends at one location: nothing to walk
        22: ([4, 6, 1, 14], {"highway": "footway"}),  # a closed loop through 1
    }
    path = tmp_path / "loops.osm"
    path.write_text(osm_xml(nodes=nodes, ways=ways))
    net = read_osm(path, target_crs=LOCAL_TM)
    assert net.report.rejected.set_index("osm_id")["reason"].to_dict() == {21: "zero length"}
    # way 22 is split at node 1 (shared with way 10): 4→6→1 and 1→4, a loop of two edges
    got = edge_lonlat(net)
    assert got[frozenset({NODES[4], NODES[1]})] in (
        pytest.approx(geodesic(NODES[4], NODES[6], NODES[1]), abs=1e-3),
        pytest.approx(geodesic(NODES[1], NODES[4]), abs=1e-3),
    )
    # way 21 is not there to split way 10 at node 2: nodes 1, 3, 4; edges 1-3, 4-6-1, 1-4
    assert net.stats["edges"] == 3 and net.stats["nodes"] == 3
    assert net.stats["dangles"] == 1 and net.stats["components"] == 1
    assert net.stats["merged_duplicate_nodes"] == 2


def test_walk_exclusion_rules():
    assert nw.walk_exclusion({"highway": "motorway_link"}) == "highway=motorway_link"
    assert nw.walk_exclusion({"highway": "trunk", "motorroad": "yes"}) == "motorroad=yes"
    assert nw.walk_exclusion({"highway": "trunk", "motorroad": "yes", "foot": "yes"}) is None
    assert nw.walk_exclusion({"highway": "service", "access": "private", "foot": "designated"}) is None
    assert nw.walk_exclusion({"highway": "service", "service": "private"}) == "service=private"
    assert nw.walk_exclusion({"highway": "service", "service": "private"}, include_private=True) is None
    assert nw.walk_exclusion({"highway": "residential", "access": "no"}) == "access=no"
    assert nw.walk_exclusion({"highway": "secondary", "sidewalk": "separate"}) == "sidewalk mapped separately"
    assert nw.walk_exclusion({"highway": "cycleway"}) is None
    assert nw.walk_exclusion({"highway": "cycleway", "foot": "no"}) == "foot=no"
    assert nw.walk_exclusion({"highway": "steps"}) is None
    assert nw.walk_exclusion({"building": "yes"}) == "no highway tag"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.osm", "", "empty"),
        ("text.osm", "this is not xml", "not a readable OSM file"),
        ("broken.osm.pbf", "not a pbf either", "not a readable OSM file"),
        ("roads.txt", "x", "unknown OSM file type"),
        ("nodes.osm", osm_xml(ways={}), "no walkable highway ways"),
        ("motorways.osm", osm_xml(ways={12: WAYS[12]}), "no walkable highway ways"),
    ],
)
def test_bad_osm_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as err:
        read_osm(path)
    text = str(err.value)
    assert message in text and name in text and "\n" not in text


def test_missing_file_and_geographic_target(tmp_path, osm_file):
    with pytest.raises(InputError, match="not found"):
        read_osm(tmp_path / "absent.osm")
    with pytest.raises(InputError, match="not projected"):
        read_osm(osm_file, target_crs="EPSG:4326")


lattice_node = st.integers(1, 36)  # node id k sits at column (k - 1) % 6, row (k - 1) // 6
way_nodes = st.lists(lattice_node, min_size=2, max_size=7).filter(
    lambda ids: all(a != b for a, b in zip(ids, ids[1:]))
)
half_step = st.integers(0, 4).map(lambda i: i + 0.5)


def lattice(column: float, row: float) -> tuple[float, float]:
    # rounded to OSM's 1e-7° so the file and the reference hold the same floats
    return round(116.400 + 0.001 * column, 7), round(39.900 + 0.001 * row, 7)


@settings(max_examples=40, deadline=None)
@given(st.lists(way_nodes, min_size=1, max_size=8), half_step, half_step, st.integers(1, 5),
       st.integers(1, 5))
def test_osm_matches_a_clipped_segment_graph(tmp_path_factory, ways, x0, y0, width, height):
    """Splitting at shared nodes and clipping whole edges keeps every walk distance of the
    graph of individually clipped way segments."""
    box = (*lattice(x0, y0), *lattice(min(x0 + width, 5.5), min(y0 + height, 5.5)))
    nodes = {k: lattice((k - 1) % 6, (k - 1) // 6) for k in range(1, 37)}
    path = tmp_path_factory.mktemp("osm") / "lattice.osm"
    footways = {i + 1: (ids, {"highway": "footway"}) for i, ids in enumerate(ways)}
    path.write_text(osm_xml(nodes=nodes, ways=footways, bounds=box))

    to_metric = pyproj.Transformer.from_crs(4326, LOCAL_TM, always_xy=True)
    reference = nx.MultiGraph()
    for ids in ways:
        for a, b in zip(ids, ids[1:]):
            clipped = shapely.clip_by_rect(LineString([nodes[a], nodes[b]]), *box)
            if clipped.is_empty or clipped.geom_type != "LineString":
                continue
            (p, q) = (tuple(np.round(c, 9)) for c in np.asarray(clipped.coords)[[0, -1]])
            if p == q:  # a segment through a corner of the box
                continue
            metric = shapely.transform(clipped, lambda c: np.column_stack(to_metric.transform(*c.T)))
            reference.add_edge(p, q, length=metric.length)
    if reference.number_of_edges() == 0:
        with pytest.raises(InputError):
            read_osm(path, target_crs=LOCAL_TM, clip_margin_m=0)
        return
    net = read_osm(path, target_crs=LOCAL_TM, clip_margin_m=0)

    assert net.edges["length_m"].sum() == pytest.approx(reference.size(weight="length"), abs=1e-6)
    assert net.stats["components"] == nx.number_connected_components(reference)
    assert net.stats["dangles"] == sum(1 for _, degree in reference.degree() if degree == 1)
    assert net.report.read == len(ways) == net.report.kept + len(net.report.rejected)
    assert set(net.report.rejected["reason"]) <= {"outside bounds"}

    to_ll = pyproj.Transformer.from_crs(LOCAL_TM, 4326, always_xy=True)
    lon, lat = to_ll.transform(net.nodes["x"].to_numpy(), net.nodes["y"].to_numpy())
    node_key = [tuple(np.round(c, 9)) for c in np.column_stack([lon, lat])]
    assert set(node_key) <= set(reference.nodes)
    assert {k for k, degree in reference.degree() if degree != 2} <= set(node_key)
    ours = nx.MultiGraph()
    ours.add_weighted_edges_from(net.edges[["u", "v", "length_m"]].itertuples(index=False), weight="length")
    for i, key in enumerate(node_key):
        mine = nx.single_source_dijkstra_path_length(ours, i, weight="length")
        theirs = nx.single_source_dijkstra_path_length(reference, key, weight="length")
        for j, d in mine.items():
            assert d == pytest.approx(theirs[node_key[j]], abs=1e-6)


# --------------------------------------------------------------------------- line layers

X0, Y0 = 500_000.0, 3_500_000.0  # coordinates in EPSG:32650


def shifted(*xy):
    return [(X0 + x, Y0 + y) for x, y in xy]


def write_lines(path, geoms, crs="EPSG:32650", **columns):
    gpd.GeoDataFrame(columns, geometry=list(geoms), crs=crs).to_file(path)
    return path


def test_lines_node_at_shared_vertex_not_at_bridge(tmp_path):
    path = write_lines(
        tmp_path / "roads.gpkg",
        [
            LineString(shifted((0, 0), (10, 0), (20, 0))),
            LineString(shifted((10, -10), (10, 0), (10, 10))),  # shares (10, 0): a crossing
            LineString(shifted((0, 5), (20, 5))),  # crosses the second line with no vertex: a bridge
        ],
        道路等级=["主干路", "支路", "主干路"],
    )
    net = read_lines(path)
    assert net.crs.to_epsg() == 32650
    assert net.stats["nodes"] == 7 and net.stats["edges"] == 5
    assert net.stats["components"] == 2
    crossing = net.nodes.index[(net.nodes["x"] == X0 + 10) & (net.nodes["y"] == Y0)]
    assert len(crossing) == 1
    assert ((net.edges["u"] == crossing[0]) | (net.edges["v"] == crossing[0])).sum() == 4
    assert not ((net.nodes["x"] == X0 + 10) & (net.nodes["y"] == Y0 + 5)).any()  # no node under the bridge
    np.testing.assert_allclose(sorted(net.edges["length_m"]), [10, 10, 10, 10, 20])
    assert sorted(net.edges["highway"]) == ["主干路", "主干路", "主干路", "支路", "支路"]
    assert sorted(net.edges["source_row"]) == [1, 1, 2, 2, 3]
    assert "not connected" in " ".join(net.report.notes)


def test_lines_multilinestring_exploded_and_bad_rows_rejected(tmp_path):
    path = write_lines(
        tmp_path / "mixed.gpkg",
        [
            MultiLineString([shifted((30, 0), (40, 0)), shifted((40, 0), (40, 10))]),
            None,
            Point(X0, Y0),
            LineString(shifted((0, 0), (0, 0))),  # one distinct point: invalid
            LineString(shifted((40, 10), (50, 10.0004))),  # meets the first within 1 mm
            LineString(shifted((60, 0), (70, 0))),
        ],
        fclass=["footway", "footway", "footway", "footway", "path", "motorway"],
    )
    net = read_lines(path)
    reasons = net.report.rejected.set_index("row")["reason"].to_dict()
    assert reasons == {
        2: "empty geometry",
        3: "not a line geometry",
        4: "invalid line (fewer than 2 distinct points or non-finite coordinates)",
        6: "fclass=motorway",
    }
    assert net.report.read == 6 and net.report.kept == 2
    assert net.stats["edges"] == 3 and net.stats["nodes"] == 4 and net.stats["components"] == 1
    assert sorted(net.edges["source_row"]) == [1, 1, 5]
    assert net.stats["dangles"] == 2
    kept_all = read_lines(path, exclude_classes=())
    assert 6 not in set(kept_all.report.rejected["row"]) and kept_all.stats["components"] == 2


def test_lines_gbk_shapefile_without_cpg_still_excludes_by_chinese_class(tmp_path):
    # GDAL reads a DBF without .cpg as Latin-1: the 道路等级 field would not be found and
    # the 高速公路 would stay in the walking network
    path = tmp_path / "roads.shp"
    gpd.GeoDataFrame(
        {"道路等级": ["高速公路", "支路"]},
        geometry=[LineString(shifted((0, 0), (100, 0))), LineString(shifted((0, 10), (100, 10)))],
        crs="EPSG:32650",
    ).to_file(path, encoding="gbk")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    net = read_lines(path)
    assert net.report.rejected.set_index("row")["reason"].to_dict() == {1: "道路等级=高速公路"}
    assert net.edges["highway"].tolist() == ["支路"]
    assert "no .cpg: attribute text detected as GB18030" in net.report.notes


def test_lines_in_lonlat_are_projected_to_utm(tmp_path):
    a, b, c = (116.401, 39.901), (116.405, 39.901), (116.405, 39.905)
    path = write_lines(tmp_path / "ll.gpkg", [LineString([a, b]), LineString([b, c])], crs="EPSG:4326")
    net = read_lines(path)
    assert net.crs.to_epsg() == 32650
    assert net.edges["length_m"].sum() == pytest.approx(geodesic(a, b) + geodesic(b, c), rel=1e-3)
    local = read_lines(path, target_crs=LOCAL_TM)
    assert local.edges["length_m"].sum() == pytest.approx(geodesic(a, b) + geodesic(b, c), abs=1e-3)
    assert local.stats["nodes"] == 3


def test_lines_that_cannot_be_projected_are_rejected(tmp_path):
    near, far = LineString([(-60.0, 0.0), (-60.0, 0.01)]), LineString([(116.40, 39.90), (116.41, 39.90)])
    path = write_lines(tmp_path / "world.gpkg", [near, far], crs="EPSG:4326")
    ortho = "+proj=ortho +lon_0=-60 +lat_0=0 +datum=WGS84 +units=m"  # the far side of the globe is not on it
    net = read_lines(path, target_crs=ortho)
    assert net.report.rejected["row"].tolist() == [2]
    assert net.report.rejected["reason"].iloc[0].startswith("cannot be projected")
    assert net.edges["length_m"].sum() == pytest.approx(geodesic((-60.0, 0.0), (-60.0, 0.01)), rel=1e-3)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_lines_without_crs_or_unreadable(tmp_path):
    path = write_lines(tmp_path / "nocrs.shp", [LineString([(0, 0), (1, 0)])], crs=None)
    with pytest.raises(InputError, match=r"nocrs\.shp: the line layer has no CRS"):
        read_lines(path)
    junk = tmp_path / "junk.gpkg"
    junk.write_text("not a geopackage")
    with pytest.raises(InputError, match=r"junk\.gpkg: cannot read"):
        read_lines(junk)
    polygons = write_lines(tmp_path / "areas.gpkg", [shapely.box(0, 0, 1, 1)])
    with pytest.raises(InputError, match=r"areas\.gpkg: no usable line features"):
        read_lines(polygons)


grid_point = st.tuples(st.integers(0, 5), st.integers(0, 5))
polyline = st.lists(grid_point, min_size=2, max_size=6).filter(
    lambda pts: all(p != q for p, q in zip(pts, pts[1:]))
)


@settings(max_examples=40, deadline=None)
@given(st.lists(polyline, min_size=1, max_size=8))
def test_lines_match_a_networkx_segment_graph(tmp_path_factory, lines):
    """Noding on shared vertices preserves every walk distance of the segment graph."""
    path = tmp_path_factory.mktemp("prop") / "grid.gpkg"
    write_lines(path, [LineString(shifted(*((10 * x, 10 * y) for x, y in pts))) for pts in lines])
    net = read_lines(path)

    reference = nx.MultiGraph()
    uses: dict = {}
    for pts in lines:
        for p, q in zip(pts, pts[1:]):
            reference.add_edge(p, q, length=10 * float(np.hypot(p[0] - q[0], p[1] - q[1])))
        for p in pts:
            uses[p] = uses.get(p, 0) + 1
        for end in (pts[0], pts[-1]):
            uses[end] = uses.get(end, 0) + 2  # ends are always nodes
    expected_nodes = {p for p, count in uses.items() if count >= 2}

    assert net.stats["nodes"] == len(expected_nodes)
    assert net.stats["components"] == nx.number_connected_components(reference)
    assert net.stats["dangles"] == sum(1 for _, degree in reference.degree() if degree == 1)
    assert net.edges["length_m"].sum() == pytest.approx(reference.size(weight="length"))

    ours = nx.MultiGraph()
    ours.add_weighted_edges_from(net.edges[["u", "v", "length_m"]].itertuples(index=False), weight="length")
    grid = {((x - X0) / 10, (y - Y0) / 10): i for i, (x, y) in enumerate(net.nodes[["x", "y"]].to_numpy())}
    assert set(grid) == expected_nodes
    for p, distances in nx.all_pairs_dijkstra_path_length(reference, weight="length"):
        if p not in grid:
            continue
        mine = nx.single_source_dijkstra_path_length(ours, grid[p], weight="length")
        for q, d in distances.items():
            if q in grid:
                assert mine[grid[q]] == pytest.approx(d, abs=1e-6)


# --------------------------------------------------------------------------- osmnx


def test_network_from_osmnx_graph(tmp_path):
    import osmnx as ox

    walkable = {i: w for i, w in WAYS.items() if i in (10, 11, 17, 19)}
    path = tmp_path / "walk.osm"
    path.write_text(osm_xml(ways=walkable))
    graph = ox.graph_from_xml(path, bidirectional=True, retain_all=True)
    net = network_from_graph(graph, target_crs=LOCAL_TM)
    undirected = ox.convert.to_undirected(graph)
    assert net.stats["edges"] == undirected.number_of_edges()
    # the graph also holds the file's unused nodes; osmnx keeps duplicate nodes 3 and 9 apart
    used = [node for node, degree in undirected.degree() if degree > 0]
    assert net.stats["nodes"] == len(used) - 1 and net.stats["merged_duplicate_nodes"] == 1
    # osmnx lengths are great-circle distances; ours are planar in a local TM
    total = sum(length for _, _, length in undirected.edges(data="length"))
    assert net.edges["length_m"].sum() == pytest.approx(total, rel=2e-3)
    assert set(net.edges["osm_id"]) <= {10, 11, 17, 19}  # the first way id of merged edges
    assert net.report.read == net.stats["edges"] and net.crs == pyproj.CRS(LOCAL_TM)


def _online() -> bool:
    try:
        socket.create_connection(("nominatim.openstreetmap.org", 443), timeout=2).close()
        return True
    except OSError:
        return False


def test_download_place_offline_message(tmp_path):
    import osmnx as ox

    if _online():
        pytest.skip("online: the offline error message cannot be tested here")
    timeout, cache = ox.settings.requests_timeout, ox.settings.cache_folder
    ox.settings.requests_timeout, ox.settings.cache_folder = 5, str(tmp_path)
    try:
        with pytest.raises(InputError) as err:
            download_place("新吴区, 无锡市, 中国")
    finally:
        ox.settings.requests_timeout, ox.settings.cache_folder = timeout, cache
    text = str(err.value)
    query = "'新吴区, 无锡市, 中国'"
    assert text.startswith(f"network.place: could not download {query} from OpenStreetMap (")
    assert "offline?" in text and "network: {osm: file}" in text and "\n" not in text


def test_download_bbox_offline_message(tmp_path):
    import osmnx as ox

    if _online():
        pytest.skip("online: the offline error message cannot be tested here")
    saved = ox.settings.requests_timeout, ox.settings.cache_folder, ox.settings.overpass_rate_limit
    # Without the rate-limit status request, which waits 60 s when the status page is unreachable.
    ox.settings.requests_timeout, ox.settings.cache_folder, ox.settings.overpass_rate_limit = 5, str(tmp_path), False
    try:
        with pytest.raises(InputError) as err:
            download_bbox((120.34, 31.54, 120.36, 31.56))
    finally:
        ox.settings.requests_timeout, ox.settings.cache_folder, ox.settings.overpass_rate_limit = saved
    text = str(err.value)
    assert text.startswith("network.bbox: could not download [120.34, 31.54, 120.36, 31.56] from OpenStreetMap (")
    assert "offline?" in text and "network: {osm: file}" in text and "\n" not in text


@pytest.mark.parametrize("bbox", [(120.4, 31.5, 120.3, 31.6), (120.3, 95.0, 120.4, 96.0)])
def test_download_bbox_rejects_a_malformed_box(bbox):
    with pytest.raises(InputError, match=r"network\.bbox: .* is not \[west, south, east, north\]"):
        download_bbox(bbox)
